"""Salvage a corrupt outbox by reading its pages: every event still on a readable page comes back.

SQLite cannot read a table through a broken b-tree: a file truncated (a power cut during a resize, a card that
lost its last blocks) usually loses some interior page, and then every query on the table fails although most leaf
pages, with most events, are intact. The sqlite3 CLI's ``.recover`` reads pages instead, but Debian 12's build has
no ``sqlite_dbpage`` (it fails with "SQL logic error"), and it brings back rows from free pages too, which for an
outbox means events already delivered or erased. So this module reads the documented file format itself
(https://www.sqlite.org/fileformat2.html), read-only:

- pages come from the database file, overlaid by the committed frames of its ``-wal`` file (checksums checked);
- the ``events`` table's root page comes from the schema on page 1; the b-tree is walked from it as far as pages
  can be read, and every table-leaf page it reaches holds live rows; a child page that is missing (past the end
  of a truncated file) or not a b-tree page leaves a gap whose id range its parent names;
- leaf pages the walk could not reach (their parent is lost) are read too, skipping pages on the free list, and
  their rows are taken only inside those gaps (a stale copy elsewhere is a row that lives on a reachable page);
- a row is taken only if it has the outbox's shape (types per column, a payload naming its own ``event_id``).

The outbox deletes with ``PRAGMA secure_delete = FAST``, so a deleted (delivered, erased) row's bytes are zeroed
on its page and a freed leaf page holds nothing to resurrect. ``unreadable`` counts the ids in the gaps that no
page gave back: an upper bound on the events lost, since ids that had already been delivered count too.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = b"SQLite format 3\x00"
WAL_MAGIC = (0x377F0682, 0x377F0683)
TABLE_LEAF, TABLE_INTERIOR = 0x0D, 0x05
#: Columns of an events row as the outbox stores them (``id`` is the rowid: NULL in the record).
EVENT_COLUMNS = ("event_id", "topic", "payload", "retention", "member_id", "created_at", "anon_until")
_UUID = re.compile(rb"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_UNBOUNDED = 1 << 62


@dataclass
class Salvage:
    """What a corrupt outbox still held: rows (``EVENT_COLUMNS`` order, oldest first) and at most how many
    could not be read."""

    source: Path
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    unreadable: int = 0
    error: str | None = None


class _Pages:
    """The database's pages: the file, overlaid by the WAL's committed frames."""

    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()
        if len(self.data) < 100 or not self.data.startswith(HEADER):
            raise ValueError("no SQLite header: nothing can be read")
        size = struct.unpack(">H", self.data[16:18])[0]
        self.size = 65536 if size == 1 else size
        if self.size < 512 or self.size & (self.size - 1):
            raise ValueError(f"impossible page size {self.size}")
        self.usable = self.size - self.data[20]
        self.count = len(self.data) // self.size
        self.wal: dict[int, bytes] = {}
        wal = Path(str(path) + "-wal")
        if wal.exists():
            self.wal = _wal_pages(wal.read_bytes(), self.size)
            self.count = max([self.count, *self.wal])

    def get(self, number: int) -> bytes | None:
        """Page ``number`` (1-based), or ``None`` if the file does not hold it whole."""
        if number in self.wal:
            return self.wal[number]
        start = (number - 1) * self.size
        if number < 1 or start + self.size > len(self.data):
            return None
        return self.data[start : start + self.size]


def _wal_pages(wal: bytes, page_size: int) -> dict[int, bytes]:
    """The newest committed version of each page in a WAL file (frames after the last commit are ignored)."""
    if len(wal) < 32:
        return {}
    magic, _, size, _, salt1, salt2 = struct.unpack(">IIIIII", wal[:24])
    if magic not in WAL_MAGIC or size != page_size:
        return {}
    order = ">" if magic & 1 else "<"
    s0, s1 = _checksum(wal[:24], order, 0, 0)
    if (s0, s1) != struct.unpack(">II", wal[24:32]):
        return {}
    pages: dict[int, bytes] = {}
    pending: dict[int, bytes] = {}
    offset = 32
    while offset + 24 + page_size <= len(wal):
        number, commit, f1, f2, c0, c1 = struct.unpack(">IIIIII", wal[offset : offset + 24])
        if (f1, f2) != (salt1, salt2):
            break
        body = wal[offset + 24 : offset + 24 + page_size]
        s0, s1 = _checksum(wal[offset : offset + 8], order, s0, s1)
        s0, s1 = _checksum(body, order, s0, s1)
        if (s0, s1) != (c0, c1):
            break
        pending[number] = body
        if commit:
            pages.update(pending)
            pending.clear()
        offset += 24 + page_size
    return pages


def _checksum(data: bytes, order: str, s0: int, s1: int) -> tuple[int, int]:
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def _varint(buf: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = buf[at + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    return (value << 8) | buf[at + 8], at + 9


def _signed(raw: bytes) -> int:
    return int.from_bytes(raw, "big", signed=True)


_INT_SIZES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}


def _record(payload: bytes) -> list[Any]:
    """The values of one record (raises on anything malformed)."""
    header_size, at = _varint(payload, 0)
    types = []
    while at < header_size:
        serial, at = _varint(payload, at)
        types.append(serial)
    values: list[Any] = []
    at = header_size
    for serial in types:
        if serial == 0:
            values.append(None)
        elif serial in _INT_SIZES:
            n = _INT_SIZES[serial]
            values.append(_signed(payload[at : at + n]))
            at += n
        elif serial == 7:
            values.append(struct.unpack(">d", payload[at : at + 8])[0])
            at += 8
        elif serial in (8, 9):
            values.append(serial - 8)
        elif serial >= 12:
            n = (serial - 12) // 2
            chunk = payload[at : at + n]
            values.append(chunk if serial % 2 == 0 else chunk.decode("utf-8"))
            at += n
        else:
            raise ValueError(f"reserved serial type {serial}")
        if at > len(payload):
            raise ValueError("record runs past its payload")
    return values


def _header_at(number: int) -> int:
    return 100 if number == 1 else 0


def _cells(page: bytes, number: int) -> list[int]:
    """Offsets of the page's cells (as many as its cell pointer array can hold, inside the page)."""
    base = _header_at(number)
    count = struct.unpack(">H", page[base + 3 : base + 5])[0]
    start = base + (12 if page[base] == TABLE_INTERIOR else 8)
    count = min(count, (len(page) - start) // 2)
    offsets = struct.unpack(f">{count}H", page[start : start + 2 * count])
    return [offset for offset in offsets if start + 2 * count <= offset < len(page)]


def _leaf_rows(pages: _Pages, page: bytes, number: int) -> Iterator[tuple[int, list[Any] | None]]:
    """(rowid, values) of every cell of a table-leaf page; ``None`` values for a cell that cannot be read."""
    usable = pages.usable
    local_max = usable - 35
    for offset in _cells(page, number):
        try:
            size, at = _varint(page, offset)
            rowid, at = _varint(page, at)
            payload = page[at : at + size] if size <= local_max else _overflowing(pages, page, at, size, usable)
            values = _record(payload)
        except (IndexError, ValueError, struct.error, UnicodeDecodeError):
            yield -1, None
            continue
        yield rowid, values


def _overflowing(pages: _Pages, page: bytes, at: int, size: int, usable: int) -> bytes:
    least = (usable - 12) * 32 // 255 - 23
    local = least + (size - least) % (usable - 4)
    if local > usable - 35:
        local = least
    parts = [page[at : at + local]]
    next_page = struct.unpack(">I", page[at + local : at + local + 4])[0]
    remaining = size - local
    seen: set[int] = set()
    while remaining > 0:
        chunk = pages.get(next_page)
        if chunk is None or next_page in seen:
            raise ValueError("overflow page missing")
        seen.add(next_page)
        parts.append(chunk[4 : 4 + min(remaining, usable - 4)])
        remaining -= usable - 4
        next_page = struct.unpack(">I", chunk[:4])[0]
    return b"".join(parts)[:size]


def _page_type(page: bytes | None, number: int) -> int | None:
    return None if page is None else page[_header_at(number)]


def _events_root(pages: _Pages) -> int | None:
    """Root page of ``events`` from the schema (sqlite_schema's b-tree, rooted at page 1)."""
    for _, values in _table_rows(pages, 1):
        if values and len(values) >= 4 and values[:2] == ["table", "events"] and isinstance(values[3], int):
            return values[3]
    return None


def _max_id(pages: _Pages) -> int | None:
    """The largest id ever given (``sqlite_sequence``), if its page can be read."""
    for _, values in _table_rows(pages, 1):
        if values and len(values) >= 4 and values[1] == "sqlite_sequence" and isinstance(values[3], int):
            for _, seq in _table_rows(pages, values[3]):
                if seq and len(seq) == 2 and seq[0] == "events" and isinstance(seq[1], int):
                    return seq[1]
    return None


def _table_rows(pages: _Pages, root: int) -> Iterator[tuple[int, list[Any] | None]]:
    """Rows of a small, intact table (the schema, sqlite_sequence)."""
    stack, seen = [root], set()
    while stack:
        number = stack.pop()
        page = pages.get(number)
        if page is None or number in seen:
            continue
        seen.add(number)
        kind = _page_type(page, number)
        if kind == TABLE_LEAF:
            yield from _leaf_rows(pages, page, number)
        elif kind == TABLE_INTERIOR:
            base = _header_at(number)
            stack.append(struct.unpack(">I", page[base + 8 : base + 12])[0])
            stack.extend(struct.unpack(">I", page[o : o + 4])[0] for o in _cells(page, number))


def _free_pages(pages: _Pages) -> set[int]:
    """Pages on the free list, as far as its trunk pages can be read."""
    free: set[int] = set()
    trunk = struct.unpack(">I", pages.data[32:36])[0]
    while trunk and trunk not in free:
        page = pages.get(trunk)
        if page is None:
            break
        free.add(trunk)
        count = struct.unpack(">I", page[4:8])[0]
        if count > (pages.usable // 4) - 2:
            break
        free.update(struct.unpack(f">{count}I", page[8 : 8 + 4 * count]))
        trunk = struct.unpack(">I", page[:4])[0]
    return free


def _walk(pages: _Pages, root: int, max_id: int | None) -> tuple[set[int], list[tuple[int, int]]]:
    """Leaf pages reachable from ``root``, and the (low, high] id ranges of subtrees that cannot be read."""
    leaves: set[int] = set()
    gaps: list[tuple[int, int]] = []
    top = max_id if max_id is not None else _UNBOUNDED
    stack = [(root, 0, top)]
    seen: set[int] = set()
    while stack:
        number, low, high = stack.pop()
        page = pages.get(number)
        kind = _page_type(page, number)
        if page is None or number in seen or kind not in (TABLE_LEAF, TABLE_INTERIOR):
            gaps.append((low, high))
            continue
        seen.add(number)
        if kind == TABLE_LEAF:
            leaves.add(number)
            continue
        previous = low
        try:
            for offset in _cells(page, number):
                child = struct.unpack(">I", page[offset : offset + 4])[0]
                key, _ = _varint(page, offset + 4)
                stack.append((child, previous, key))
                previous = key
            base = _header_at(number)
            stack.append((struct.unpack(">I", page[base + 8 : base + 12])[0], previous, high))
        except (IndexError, struct.error):
            gaps.append((previous, high))
    return leaves, gaps


def _event_row(values: list[Any] | None) -> tuple[Any, ...] | None:
    """The row in ``EVENT_COLUMNS`` order if ``values`` has the outbox's shape, else ``None``."""
    if values is None or len(values) not in (7, 8, 9) or values[0] is not None:
        return None
    row = (*values[1:], None) if len(values) == 7 else tuple(values[1:8])  # born_mono (9th): this run sets it
    event_id, topic, payload, retention, member_id, created_at, anon_until = row
    if isinstance(payload, str):
        payload = payload.encode()
    sound = (
        isinstance(event_id, str)
        and _UUID.match(event_id.encode()) is not None
        and isinstance(topic, str)
        and isinstance(payload, bytes)
        and event_id.encode() in payload
        and retention in (0, 1, 2)
        and (member_id is None or isinstance(member_id, str))
        and isinstance(created_at, int | float)
        and (anon_until is None or isinstance(anon_until, int | float))
    )
    return (event_id, topic, payload, retention, member_id, created_at, anon_until) if sound else None


def salvage(path: Path) -> Salvage:
    """Every events row that can still be read from the database at ``path`` (and its WAL), oldest first.

    Never raises: a file too damaged to read gives no rows and an ``error``."""
    result = Salvage(path)
    try:
        _salvage(_Pages(path), result)
    except (OSError, ValueError, IndexError, struct.error) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


def _salvage(pages: _Pages, result: Salvage) -> None:
    root = _events_root(pages)
    max_id = _max_id(pages)
    if root is None:
        leaves: set[int] = set()
        gaps = [(0, max_id if max_id is not None else _UNBOUNDED)]
        result.error = "the schema page cannot be read; rows taken from every leaf page"
    else:
        leaves, gaps = _walk(pages, root, max_id)
    free = _free_pages(pages)
    found: dict[int, tuple[Any, ...]] = {}
    for number in leaves:
        page = pages.get(number)
        assert page is not None
        for rowid, values in _leaf_rows(pages, page, number):
            row = _event_row(values)
            if row is not None:
                found[rowid] = row
            else:
                result.unreadable += 1
    if gaps:
        for number in range(2, pages.count + 1):
            if number in leaves or number in free:
                continue
            page = pages.get(number)
            if _page_type(page, number) != TABLE_LEAF or page is None:
                continue
            for rowid, values in _leaf_rows(pages, page, number):
                row = _event_row(values)
                if row is not None and rowid not in found and any(low < rowid <= high for low, high in gaps):
                    found[rowid] = row
    in_gaps = sum(1 for rowid in found if any(low < rowid <= high for low, high in gaps))
    highest = max(found, default=0)
    span = sum(min(high, max(highest, low)) - low if high == _UNBOUNDED else high - low for low, high in gaps)
    result.unreadable += max(0, span - in_gaps)
    result.rows = [found[rowid] for rowid in sorted(found)]
