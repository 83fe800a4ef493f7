"""The outbox's SQLite file: opening it durably, checking it at start, and keeping a corrupt one for inspection."""

from __future__ import annotations

import glob
import json
import logging
import sqlite3
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def open_wal(path: Path) -> sqlite3.Connection:
    """WAL with ``synchronous=FULL``: a committed transaction survives power loss.

    ``secure_delete=FAST`` zeroes a deleted row's bytes on its page (no extra I/O: the page is written anyway), so
    a delivered or erased event does not linger in the file, and salvaging a corrupt file page by page
    (``agent.delivery.salvage``) cannot bring it back."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA secure_delete=FAST")
    return conn


def check_integrity(path: Path) -> str | None:
    """``None`` when the file is a sound SQLite database (or absent), else what is wrong."""
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            result = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    problems = [str(r[0]) for r in result if r[0] != "ok"]
    return "; ".join(problems[:5]) or None


def move_aside(path: Path, reason: str) -> Path:
    """Keep a corrupt outbox (and its WAL) for inspection under a new name (deleted only by an erasure of a member
    it holds: ``purge_moved_aside``)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            part.rename(Path(str(target) + suffix))
    logger.error("outbox %s is corrupt (%s); moved aside to %s, salvaging what it holds", path, reason, target)
    return target


def moved_aside(path: Path) -> list[Path]:
    """The outboxes moved aside beside ``path`` (each with its ``-wal``/``-shm`` where there is one)."""
    return sorted(path.parent.glob(f"{glob.escape(path.name)}.corrupt-*"))


def purge_moved_aside(path: Path, member_id: str) -> int:
    """Erasure: delete every moved-aside outbox (with its WAL) whose bytes hold ``member_id``; how many sets.

    A corrupt file cannot be edited safely, and everything that could be read from it was salvaged into the live
    outbox at start (where the erasure deletes it); a moved-aside file without the member stays for inspection.
    """
    needles = {member_id.encode(), json.dumps(member_id)[1:-1].encode()}  # as stored, and JSON-escaped
    sets: dict[str, list[Path]] = {}
    for part in moved_aside(path):
        base = str(part).removesuffix("-wal").removesuffix("-shm")
        sets.setdefault(base, []).append(part)
    purged = 0
    for base, parts in sets.items():
        if any(_holds(part, needles) for part in parts):
            for part in parts:
                part.unlink(missing_ok=True)
            purged += 1
            logger.warning("erasure: deleted the moved-aside outbox %s, which held the member", base)
    return purged


def _holds(path: Path, needles: set[bytes]) -> bool:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    return any(needle in data for needle in needles)
