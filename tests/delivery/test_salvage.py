"""A corrupt outbox at start: what its pages still hold comes back, nothing delivered or erased is resurrected, what
could not be read is counted, and retention applies to what came back.

The oracle is SQLite's own ``dbstat`` table over the intact file: how many live rows sit on the pages a
truncation keeps. The salvage must find exactly those.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from agent.config.schema import OutboxSettings
from agent.delivery.outbox import Outbox
from agent.delivery.salvage import salvage
from agent.delivery.topics import Topics
from agent.events import EventStamper
from agent.pipelines.serial.events import BarcodeScanned

TOPICS = Topics("store", "s1", "t1")
SEED = 14


def stamper() -> EventStamper:
    counter = itertools.count(1)
    return EventStamper("s1", "t1", lambda: next(counter))


def build(path: Path, n: int, delivered: int) -> list[str]:
    """An outbox of ``n`` events whose oldest ``delivered`` were acknowledged; the ids still queued."""
    stamp = stamper()
    box = Outbox(path, OutboxSettings(commit_window_ms=5), TOPICS)
    ids = []
    for i in range(n):
        event = stamp.stamp(BarcodeScanned(captured_at=time.time(), device="till", code=f"{i:013d}"))
        ids.append(event.event_id)
        box.accept(event)
    assert box.flush(30)
    box.ack_rows(range(1, delivered + 1))
    assert box.flush(30)
    deadline = time.monotonic() + 10
    while box.rows > n - delivered and time.monotonic() < deadline:
        time.sleep(0.02)
    box.close()
    return ids[delivered:]


def rows_on_pages(path: Path, pages: int) -> int:
    """SQLite's own count (dbstat) of the live events rows on the first ``pages`` pages of an intact file."""
    with sqlite3.connect(path) as conn:
        found = conn.execute(
            "SELECT COALESCE(SUM(ncell), 0) FROM dbstat WHERE name = 'events' AND pagetype = 'leaf' AND pageno <= ?",
            (pages,),
        ).fetchone()
    return int(found[0])


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("salvage") / "outbox.sqlite3"
    return path, build(path, 10_000, 2_000)


def test_an_intact_file_gives_back_exactly_its_queued_events(intact: tuple[Path, list[str]]) -> None:
    path, queued = intact
    found = salvage(path)
    assert [row[0] for row in found.rows] == queued, "every queued event, in order; none of the delivered ones"
    assert found.unreadable == 0 and found.error is None
    assert json.loads(found.rows[0][2])["event_id"] == queued[0]


def test_truncated_at_10_random_offsets_every_row_on_a_kept_page_comes_back(
    intact: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, queued = intact
    size = path.stat().st_size
    rng = random.Random(SEED)
    lines = []
    for offset in sorted(rng.randrange(4096, size) for _ in range(10)):
        target = tmp_path / f"cut-{offset}" / "outbox.sqlite3"
        target.parent.mkdir()
        shutil.copy(path, target)
        os.truncate(target, offset)
        expected = rows_on_pages(path, offset // 4096)
        box = Outbox(target, OutboxSettings(), TOPICS)
        try:
            kept = [r.event_id for r in box.fetch(0, 20_000)]
            stats = box.stats()
        finally:
            box.close()
        assert box.moved_aside is not None and box.moved_aside.stat().st_size == offset, "kept for inspection"
        assert len(kept) == expected == stats["salvaged"], (offset, len(kept), expected)
        assert set(kept) <= set(queued) and kept == sorted(kept, key=queued.index), "no resurrection, in order"
        lost = len(queued) - len(kept)
        assert stats["unreadable"] >= lost, "what could not be read is counted (an upper bound), never silent"
        lines.append(f"{offset:>9} {len(queued):>6} {len(kept):>8} {lost:>6} {stats['unreadable']:>11}")
    print("\n   offset queued salvaged   lost  unreadable<=\n" + "\n".join(lines))


def test_a_crash_leaves_a_wal_whose_committed_frames_are_salvaged(tmp_path: Path) -> None:
    """A SIGKILLed terminal leaves its last commits in the -wal file; if the main file is then found corrupt, the
    committed frames still count (and a torn last frame does not)."""
    path = tmp_path / "outbox.sqlite3"
    stamp = stamper()
    box = Outbox(path, OutboxSettings(commit_window_ms=5), TOPICS)
    ids = []
    for i in range(3000):
        event = stamp.stamp(BarcodeScanned(captured_at=time.time(), device="till", code=f"{i:013d}"))
        ids.append(event.event_id)
        box.accept(event)
    assert box.flush(30)
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for suffix in ("", "-wal"):  # the files as a power cut leaves them: WAL not checkpointed
        shutil.copy(str(path) + suffix, str(crashed / "outbox.sqlite3") + suffix)
    box.close()
    wal = crashed / "outbox.sqlite3-wal"
    assert wal.stat().st_size > 100_000
    with wal.open("r+b") as f:  # a torn write: the last frame half written, so its transaction never committed
        f.truncate(wal.stat().st_size - 2000)
    oracle = tmp_path / "oracle"
    shutil.copytree(crashed, oracle)  # SQLite itself, on a copy (opening it replays and checkpoints the WAL)
    with sqlite3.connect(oracle / "outbox.sqlite3") as conn:
        committed = [str(r[0]) for r in conn.execute("SELECT event_id FROM events ORDER BY id")]
    found = salvage(crashed / "outbox.sqlite3")
    got = [row[0] for row in found.rows]
    assert got == committed == ids[: len(got)], "what SQLite reads: a prefix of the commits, in order"
    assert 0 < len(got) < len(ids), "the torn transaction is not taken"
    assert found.unreadable == 0


@pytest.mark.parametrize("synced", [True, False])
def test_salvaged_rows_get_the_retention(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synced: bool) -> None:
    """Salvaged events older than ``events_days`` are dropped (counted as expired) and anonymous ids nulled, as
    if they had never left the outbox. A corrupt file does not tell how long its rows waited: their wall-clock
    stamps do, where the clock is synchronised; where it is not, none is dropped (kept longer, never lost)."""
    import dataclasses

    monkeypatch.setenv("STORE_AGENT_CLOCK_SYNCED", "1" if synced else "0")
    from agent.pipelines.people.events import ZoneEntered

    path = tmp_path / "outbox.sqlite3"
    stamp = stamper()
    now = time.time()
    old = dataclasses.replace(
        stamp.stamp(BarcodeScanned(captured_at=now, device="till", code="1")), emitted_at=now - 9 * 86400
    )
    young = stamp.stamp(BarcodeScanned(captured_at=now, device="till", code="2"))
    track = stamp.stamp(ZoneEntered(captured_at=now, camera="door", zone="till", track_id="a1b2c3-7"))
    track = dataclasses.replace(track, emitted_at=now - 3600)
    box = Outbox(path, OutboxSettings(), TOPICS, anonymous_ids_s=300)
    for event in (old, young, track):
        box.accept(event)
    box.close()
    with path.open("r+b") as f:  # corrupt the header's page count: SQLite calls it malformed
        f.seek(28)
        f.write((10_000).to_bytes(4, "big"))
    box = Outbox(path, OutboxSettings(), TOPICS, expire_after_s=7 * 86400, anonymous_ids_s=300)
    try:
        kept = {r.event_id: json.loads(r.payload) for r in box.fetch(0, 10)}
        stats = box.stats()
    finally:
        box.close()
    assert box.moved_aside is not None
    assert stats["salvaged"] == 3
    if synced:
        assert stats["dropped"]["expired"] == {"normal": 1}
        assert set(kept) == {young.event_id, track.event_id}
    else:
        assert "expired" not in stats["dropped"] and set(kept) == {old.event_id, young.event_id, track.event_id}
    assert kept[track.event_id]["track_id"] is None, "an anonymous id of a salvaged row is nulled"


def test_damaged_pages_never_stop_the_salvage(intact: tuple[Path, list[str]], tmp_path: Path) -> None:
    """Bytes overwritten with noise at 15 places (fixed seed): the salvage never raises, brings back only rows that
    were queued, and counts the rest."""
    path, queued = intact
    data = bytearray(path.read_bytes())
    rng = random.Random(SEED)
    target = tmp_path / "noisy.sqlite3"
    for round_ in range(15):
        at = rng.randrange(0, len(data) - 64)
        data[at : at + 64] = rng.randbytes(64)
        target.write_bytes(data)
        found = salvage(target)
        got = [row[0] for row in found.rows]
        assert set(got) <= set(queued), round_
        assert got == sorted(got, key=queued.index)
    print(f"\n15 noisy stretches of 64 bytes: {len(got)} of {len(queued)} rows salvaged, {found.unreadable} counted")
    assert len(got) >= 0.9 * len(queued), "a few damaged pages cost a few pages' rows"
