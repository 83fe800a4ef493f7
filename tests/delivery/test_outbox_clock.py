"""Queued events' ages over restarts: within a boot the monotonic clock is shared; over a reboot the age goes on
from where the last run left off, plus the downtime only when a synchronised clock measured it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from agent import clock
from agent.config.schema import OutboxSettings
from agent.delivery.outbox import Outbox
from agent.delivery.topics import Topics
from agent.events import EventStamper
from agent.pipelines.serial.events import BarcodeScanned

DAY = 86400.0
TOPICS = Topics("store", "s1", "t1")


def _queued(path: Path, n: int = 3) -> None:
    stamper = EventStamper("s1", "t1", iter(range(1, 100)).__next__)
    box = Outbox(path, OutboxSettings(), TOPICS)
    for i in range(n):
        box.accept(stamper.stamp(BarcodeScanned(captured_at=clock.now(), device="till", code=str(i))))
    box.close()


def _ages(path: Path) -> list[float]:
    with sqlite3.connect(path) as db:
        return [time.monotonic() - b for (b,) in db.execute("SELECT born_mono FROM events ORDER BY id")]


def _as_if_rebooted(path: Path, ran_for_s: float, down_s: float, synced_before: bool) -> None:
    """The meta the last run left, as if it ran on another boot ``ran_for_s`` after queueing, ``down_s`` ago."""
    with sqlite3.connect(path) as db:
        born = db.execute("SELECT MAX(born_mono) FROM events").fetchone()[0]
        db.executemany(
            "INSERT OR REPLACE INTO outbox_meta VALUES (?, ?)",
            [("boot_id", "another-boot"), ("last_mono", born + ran_for_s), ("last_wall", clock.now() - down_s),
             ("last_synced", int(synced_before))],
        )  # fmt: skip


def test_within_one_boot_the_ages_stand(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    _queued(path)
    before = _ages(path)
    Outbox(path, OutboxSettings(), TOPICS).close()
    after = _ages(path)
    assert all(0 <= a - b < 5 for a, b in zip(after, before, strict=True))


@pytest.mark.parametrize(("synced", "expected_s"), [(True, 600 + 3 * 3600), (False, 600)])
def test_over_a_reboot_the_downtime_counts_only_when_a_synchronised_clock_measured_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synced: bool, expected_s: float
) -> None:
    monkeypatch.setenv("STORE_AGENT_CLOCK_SYNCED", "1" if synced else "0")
    path = tmp_path / "o.sqlite3"
    _queued(path)
    _as_if_rebooted(path, ran_for_s=600, down_s=3 * 3600, synced_before=True)
    Outbox(path, OutboxSettings(), TOPICS).close()
    for age in _ages(path):
        assert expected_s - 1 < age < expected_s + 10


def test_a_reboot_with_the_clock_a_year_off_drops_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Pi case: the last run saw a synchronised clock, this one boots a year behind (unsynchronised): the
    downtime is unknown and counts as zero; nothing waits 'minus a year' or 'a year', nothing expires."""
    path = tmp_path / "o.sqlite3"
    _queued(path)
    _as_if_rebooted(path, ran_for_s=60, down_s=-365 * DAY, synced_before=True)
    monkeypatch.setenv("STORE_AGENT_CLOCK_SYNCED", "0")
    box = Outbox(path, OutboxSettings(), TOPICS, expire_after_s=7 * DAY)
    try:
        box.flush(5)
        assert box.stats()["depth"] == 3 and "expired" not in box.stats()["dropped"]
    finally:
        box.close()
    assert all(59 < age < 70 for age in _ages(path))


def test_rows_queued_before_the_age_column_take_their_age_from_a_synchronised_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "o.sqlite3"
    _queued(path)
    with sqlite3.connect(path) as db:  # as an older agent left it: wall times only
        db.execute("ALTER TABLE events DROP COLUMN born_mono")
        db.execute("DROP TABLE outbox_meta")
        db.execute("UPDATE events SET created_at = created_at - 3600")
    monkeypatch.setenv("STORE_AGENT_CLOCK_SYNCED", "1")
    Outbox(path, OutboxSettings(), TOPICS).close()
    assert all(3599 < age < 3610 for age in _ages(path))
