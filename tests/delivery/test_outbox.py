"""The SQLite outbox on its own: group commit, durability across reopen, caps and drop policy, erasure, corruption."""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from agent.config.schema import OutboxSettings
from agent.delivery.outbox import Outbox
from agent.delivery.topics import Topics
from agent.events import DeviceStateChanged, EventBody, EventStamper, Retention
from agent.pipelines.serial.events import BarcodeScanned
from tests.delivery.faults import wait_until

TOPICS = Topics("store", "s1", "t1")


@dataclass(frozen=True, kw_only=True)
class MemberSeen(EventBody):
    """A protected event carrying a member id, shaped like the face pipeline's identity events."""

    TYPE: ClassVar[str] = "test.member_seen"
    RETENTION: ClassVar[Retention] = Retention.PROTECTED
    member_id: str


def stamper() -> EventStamper:
    counter = itertools.count(1)
    return EventStamper("s1", "t1", lambda: next(counter))


def barcode(i: int) -> BarcodeScanned:
    return BarcodeScanned(captured_at=time.time(), device="scanner", code=f"{i:013d}")


def telemetry(i: int) -> DeviceStateChanged:
    return DeviceStateChanged(
        captured_at=time.time(), device=f"cam{i}", kind="camera", state="online", previous="offline"
    )


def settings(**kw: int) -> OutboxSettings:
    return OutboxSettings(**{"commit_window_ms": 20, **kw})


def test_group_commit_survives_reopen_in_order(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    stamp = stamper()
    box = Outbox(path, settings(), TOPICS)
    events = [stamp.stamp(barcode(i)) for i in range(500)]
    for event in events:
        box.accept(event)
    box.close()
    assert box.commits < 100, "500 events arriving together share commits"
    reopened = Outbox(path, settings(), TOPICS)
    try:
        rows = reopened.fetch(0, 1000)
        assert [r.event_id for r in rows] == [e.event_id for e in events]
        assert rows[0].topic == "store/s1/t1/events/barcode.scanned"
        assert rows[0].payload == events[0].to_json().encode()
        assert reopened.stats()["depth"] == 500
        reopened.ack_rows([r.id for r in rows[:200]])
        reopened.ack_events([e.event_id for e in events[200:300]])
        assert reopened.flush(5)
        assert wait_until(lambda: reopened.delivered == 300, 5), reopened.stats()
        assert [r.event_id for r in reopened.fetch(0, 1000)] == [e.event_id for e in events[300:]]
        assert reopened.delivered == 300
    finally:
        reopened.close()


def test_full_outbox_drops_telemetry_then_normal_never_protected(tmp_path: Path) -> None:
    stamp = stamper()
    box = Outbox(tmp_path / "o.sqlite3", settings(max_rows=100), TOPICS)
    protected = [stamp.stamp(MemberSeen(captured_at=time.time(), member_id=f"m{i}")) for i in range(30)]
    normal = [stamp.stamp(barcode(i)) for i in range(50)]
    tele = [stamp.stamp(telemetry(i)) for i in range(50)]
    for event in [*protected[:10], *tele, *normal, *protected[10:]]:
        box.accept(event)
    box.close()
    box = Outbox(tmp_path / "o.sqlite3", settings(max_rows=100), TOPICS)
    try:
        kept = {r.event_id for r in box.fetch(0, 1000)}
        assert len(kept) == 100
        assert {e.event_id for e in protected} <= kept, "protected events are never dropped for space"
        assert {e.event_id for e in normal} <= kept
        assert len(kept & {e.event_id for e in tele}) == 20
        assert kept >= {e.event_id for e in tele[-20:]}, "telemetry is dropped oldest first"
    finally:
        box.close()
    # Now only normal and protected: normal goes, oldest first; counters say so.
    box = Outbox(tmp_path / "o2.sqlite3", settings(max_rows=40), TOPICS)
    for event in [*protected, *normal]:
        box.accept(event)
    assert box.flush(10)
    stats = box.stats()
    box.close()
    assert stats["depth"] == 40
    assert stats["dropped"] == {"space": {"normal": 40}}
    assert stats["dropped_total"] == 40


def test_only_protected_over_cap_are_kept(tmp_path: Path) -> None:
    stamp = stamper()
    box = Outbox(tmp_path / "o.sqlite3", settings(max_rows=5), TOPICS)
    for i in range(12):
        box.accept(stamp.stamp(MemberSeen(captured_at=time.time(), member_id=f"m{i}")))
    assert box.flush(10)
    assert box.stats()["depth"] == 12 and box.stats()["dropped_total"] == 0
    box.close()


def test_byte_cap(tmp_path: Path) -> None:
    stamp = stamper()
    box = Outbox(tmp_path / "o.sqlite3", settings(max_bytes=20_000), TOPICS)
    for i in range(200):
        box.accept(stamp.stamp(barcode(i)))
    assert box.flush(10)
    stats = box.stats()
    box.close()
    assert stats["bytes"] <= 20_000 and stats["depth"] + stats["dropped"]["space"]["normal"] == 200


def test_delete_member_events(tmp_path: Path) -> None:
    stamp = stamper()
    box = Outbox(tmp_path / "o.sqlite3", settings(), TOPICS)
    try:
        for i in range(10):
            box.accept(stamp.stamp(MemberSeen(captured_at=time.time(), member_id="alice" if i % 2 else "bob")))
            box.accept(stamp.stamp(barcode(i)))
        assert box.delete_member_events("alice") == 5
        payloads = [r.payload for r in box.fetch(0, 100)]
        assert len(payloads) == 15 and not any(b'"alice"' in p for p in payloads)
        assert box.stats()["dropped"]["erased"] == {"any": 5}
    finally:
        box.close()


def test_corrupt_file_is_moved_aside_not_deleted(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    garbage = b"this is not an SQLite database" * 100
    path.write_bytes(garbage)
    box = Outbox(path, settings(), TOPICS)
    try:
        assert box.moved_aside is not None and box.moved_aside.read_bytes() == garbage
        assert box.stats()["moved_aside"] == str(box.moved_aside)
        box.accept(stamper().stamp(barcode(1)))
        assert box.flush(5) and box.stats()["depth"] == 1
    finally:
        box.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_close_commits_everything_and_rejects_later_events(tmp_path: Path) -> None:
    stamp = stamper()
    box = Outbox(tmp_path / "o.sqlite3", settings(commit_window_ms=500), TOPICS)
    for i in range(50):
        box.accept(stamp.stamp(barcode(i)))
    box.close()
    assert box.committed == 50
    try:
        box.accept(stamp.stamp(barcode(99)))
    except Exception as exc:
        assert "closed" in str(exc)
    else:
        raise AssertionError("accept after close must fail loudly")


def test_queued_anonymous_ids_are_nulled_after_the_retention_and_member_ids_are_kept(tmp_path: Path) -> None:
    """``privacy.retention.anonymous_track_s`` reaches queued events: an anonymous track id (no member) is nulled
    in the stored payload once it is that old; an identified member's track keeps its id (erasure handles it)."""
    from agent.identity.fusion import IdentityClaim
    from agent.pipelines.face.events import VisitorSeen
    from agent.pipelines.people.events import ZoneEntered
    from agent.schemas import validate_payload

    box = Outbox(tmp_path / "o.sqlite3", settings(), TOPICS, anonymous_ids_s=1.0)
    stamp = stamper()
    now = time.time()
    claim = IdentityClaim(member_id="m-1", fused_confidence=0.9, modalities={"face": 0.9})
    events = [
        stamp.stamp(ZoneEntered(captured_at=now, camera="door", zone="till", track_id="a1b2c3-7")),
        stamp.stamp(ZoneEntered(captured_at=now, camera="door", zone="till", track_id="a1b2c3-8", identity=claim)),
        stamp.stamp(VisitorSeen(captured_at=now, visitor_id="v-0123456789abcdef", camera="door", frames=3)),
        stamp.stamp(barcode(1)),
    ]
    try:
        for event in events:
            box.accept(event)
        assert box.flush(5)
        before = {r.event_id: json.loads(r.payload) for r in box.fetch(0, 10)}
        assert before[events[0].event_id]["track_id"] == "a1b2c3-7"
        deadline = time.monotonic() + 10
        while box.redacted < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        after = {r.event_id: json.loads(r.payload) for r in box.fetch(0, 10)}
        assert box.redacted == 2 and box.stats()["anonymous_ids_redacted"] == 2
        assert after[events[0].event_id]["track_id"] is None
        assert after[events[2].event_id]["visitor_id"] is None
        assert after[events[1].event_id]["track_id"] == "a1b2c3-8", "a member's track is not anonymous"
        assert after[events[3].event_id] == before[events[3].event_id]
        for payload in after.values():
            validate_payload(payload)
        assert box.stats()["bytes"] == sum(len(r.payload) for r in box.fetch(0, 10))
    finally:
        box.close()


def test_commit_window_groups_events_arriving_close_together(tmp_path: Path) -> None:
    """``commit_window_ms``: events trickling in 5 ms apart get one disk commit each with a 0 ms window and
    share commits with a 100 ms window (what keeps an SD card alive)."""
    commits = {}
    for window in (0, 100):
        stamp = stamper()
        box = Outbox(tmp_path / f"o{window}.sqlite3", settings(commit_window_ms=window), TOPICS)
        try:
            for i in range(40):
                box.accept(stamp.stamp(barcode(i)))
                time.sleep(0.005)
            assert box.flush(10)
            commits[window] = box.commits
        finally:
            box.close()
    assert commits[0] >= 30 and commits[100] <= 8, commits


def test_undelivered_events_older_than_events_days_are_dropped(tmp_path: Path) -> None:
    """``privacy.retention.events_days`` reaches the daemon's outbox: events waiting longer are dropped (counted
    as expired), younger ones and protected ones (identity, consent) are kept. How long an event has waited is
    measured on the monotonic clock (``born_mono``), never from its wall-clock stamp: the rows are aged in the
    file, as days of waiting would have aged them."""
    import dataclasses

    from agent.delivery.broker import free_port
    from agent.delivery.outbox import OUTBOX_FILE
    from agent.runtime.daemon import Daemon
    from tests.delivery.conftest import loaded_config

    loaded = loaded_config(tmp_path, free_port(), privacy={"retention": {"events_days": 7}})  # no broker there
    day = 86400.0
    stamp = stamper()
    old, young = stamp.stamp(barcode(1)), stamp.stamp(barcode(2))
    member = stamp.stamp(MemberSeen(captured_at=time.time(), member_id="m-1"))
    waiting = [
        dataclasses.replace(old, emitted_at=old.emitted_at - 8 * day),
        dataclasses.replace(young, emitted_at=young.emitted_at - 6 * day),
        dataclasses.replace(member, emitted_at=member.emitted_at - 30 * day),
    ]
    path = Path(loaded.config.storage.state_dir) / OUTBOX_FILE
    box = Outbox(path, settings(), TOPICS)
    for event in waiting:
        box.accept(event)
    box.close()
    with sqlite3.connect(path) as db:  # waited 8, 6 and 30 days (same boot: the ages stand as stored)
        for event, days in zip(waiting, (8, 6, 30), strict=True):
            db.execute("UPDATE events SET born_mono = born_mono - ? WHERE event_id = ?", (days * day, event.event_id))
    with Daemon(loaded) as daemon:
        daemon.agent.emit(barcode(3))  # anything committed makes the outbox apply its retention
        assert daemon.outbox.flush(10)
        kept = {r.event_id for r in daemon.outbox.fetch(0, 100)}
        stats = daemon.outbox.stats()
    assert old.event_id not in kept and {young.event_id, member.event_id} <= kept
    assert stats["dropped"]["expired"] == {"normal": 1}
