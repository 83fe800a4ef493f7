"""The outbox, the counters and ``emit`` on a real full file system (a small tmpfs; root only): states, not crashes.

Memory stays bounded while the disk refuses writes (telemetry goes first, then normal events, protected ones
never; every drop counted), the counters go on in memory and are saved once space returns, and a sink that
refuses an event never raises into the thread that emitted it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config.schema import OutboxSettings
from agent.delivery import outbox as outbox_module
from agent.delivery.outbox import Outbox
from agent.delivery.topics import Topics
from agent.events import DeviceStateChanged, EventStamper
from agent.pipelines.serial.events import BarcodeScanned
from agent.runtime.state import COUNTERS_FILE, SEQ_BLOCK, StateStore, read_counters
from agent.storage import StorageMonitor, StorageState
from tests.delivery.faults import Unavailable, fill, tmpfs, wait_until
from tests.delivery.test_outbox import MemberSeen

TOPICS = Topics("store", "s1", "t1")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    try:
        with tmpfs(tmp_path / "fs", "4m") as fs:
            yield fs
    except Unavailable as exc:
        pytest.skip(str(exc))


def test_memory_stays_bounded_and_drops_are_counted_by_class(small_fs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "MAX_PENDING", 600)
    monkeypatch.setattr(outbox_module, "SHED_BATCH", 50)
    counter = itertools.count(1)
    stamp = EventStamper("s1", "t1", lambda: next(counter))
    storage = StorageMonitor(small_fs)
    box = Outbox(small_fs / "outbox.sqlite3", OutboxSettings(commit_window_ms=5), TOPICS, storage=storage)
    filler = fill(small_fs)
    protected, normal, telemetry = [], [], []
    try:
        started = time.monotonic()
        for i in range(1200):
            kind = i % 3
            if kind == 0:
                event = stamp.stamp(MemberSeen(captured_at=time.time(), member_id=f"m{i}"))
                protected.append(event.event_id)
            elif kind == 1:
                event = stamp.stamp(BarcodeScanned(captured_at=time.time(), device="till", code=f"{i:013d}"))
                normal.append(event.event_id)
            else:
                event = stamp.stamp(
                    DeviceStateChanged(
                        captured_at=time.time(), device=f"c{i}", kind="camera", state="online", previous="offline"
                    )
                )
                telemetry.append(event.event_id)
            box.accept(event)
            if i == 0:
                assert wait_until(lambda: box.failing, 10), "the first commit fails: the disk is full"
        assert time.monotonic() - started < 10, "accept never waits on a disk that will not catch up"
        stats = box.stats()
        assert stats["pending"] <= 600 + 50, "memory is bounded"
        assert storage.state()[0] is StorageState.FULL
        memory = stats["dropped"]["memory"]
        # telemetry first: all of it but what was out for a write attempt (up to FAILING_BATCH) when memory filled
        assert memory["telemetry"] >= 400 - outbox_module.FAILING_BATCH and memory["normal"] > 0
        assert sum(memory.values()) == 1200 - stats["pending"] - stats["committed"]
        assert "protected" not in memory
    finally:
        filler.unlink()
    try:
        assert box.flush(30), "once space returns, what was kept is written"
        assert wait_until(lambda: not box.failing and storage.state()[0] is StorageState.OK, 10)
        kept = {r.event_id for r in box.fetch(0, 2000)}
        assert set(protected) <= kept, "protected events are never dropped for memory"
        assert len(kept) == 1200 - sum(box.stats()["dropped"]["memory"].values())
    finally:
        box.close()


def test_counters_go_on_in_memory_and_are_saved_when_space_returns(small_fs: Path) -> None:
    storage = StorageMonitor(small_fs)
    state = StateStore(small_fs, storage)
    first = state.next_seq()
    filler = fill(small_fs)
    try:
        seqs = [state.next_seq() for _ in range(SEQ_BLOCK + 10)]  # crosses a reservation: a save that fails
        assert seqs == list(range(first + 1, first + SEQ_BLOCK + 11)), "the sequence never stops or repeats"
        assert storage.state()[0] is StorageState.FULL
        assert read_counters(small_fs / COUNTERS_FILE)["seq_reserved"] < seqs[-1], "not saved: the disk is full"
    finally:
        filler.unlink()
    time.sleep(5.1)  # SAVE_RETRY_S: the next event after it retries the save
    state.next_seq()
    assert read_counters(small_fs / COUNTERS_FILE)["seq_reserved"] >= seqs[-1]
    assert storage.state()[0] is StorageState.OK


def test_emit_never_raises_into_the_calling_thread(tmp_path: Path) -> None:
    """A sink that refuses (here a closed outbox) is counted and logged; the worker or device thread goes on."""
    from agent.config.loader import LoadedConfig
    from agent.config.schema import StoreConfig
    from agent.runtime.agent import Agent

    box = Outbox(tmp_path / "outbox.sqlite3", OutboxSettings(), TOPICS)
    box.close()
    config = StoreConfig.model_validate(
        {
            "version": 1,
            "store": {"id": "s1", "name": "S"},
            "terminal": {"id": "t1"},
            "storage": {"state_dir": str(tmp_path)},
        }
    )
    agent = Agent(LoadedConfig(config=config, path=tmp_path / "store.yaml", sha256="0" * 64), box)
    agent.start()
    try:
        assert agent.emit(BarcodeScanned(captured_at=time.time(), device="till", code="1")) is None
        assert agent.health()["events_not_accepted"] == {"barcode.scanned": 1}
    finally:
        agent.stop_event.set()
        agent._stack.pop_all()  # its sink is the closed outbox: nothing to close
