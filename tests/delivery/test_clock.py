"""A terminal without a real-time clock: the wall clock steps a day forward and two days back mid-run while 3,000
events wait for a broker that is down. None is dropped by retention (a day here), every one arrives, in order,
each saying whether the clock was synchronised; and the clock module answers what the kernel says."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from agent import clock
from agent.delivery import outbox as outbox_module
from agent.delivery.broker import Mosquitto
from agent.delivery.monitor import Monitor
from agent.pipelines.serial.events import BarcodeScanned
from agent.runtime.daemon import Daemon
from tests.delivery.conftest import REPO, loaded_config, validator
from tests.delivery.faults import session_saved, wait_until

DAY = 86400.0


@pytest.fixture
def stepped_clock() -> Any:
    yield clock.set_offset
    clock.set_offset(0.0)


def test_clock_steps_drop_and_reorder_nothing(
    own_broker: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stepped_clock: Any
) -> None:
    monkeypatch.setattr(outbox_module, "EXPIRY_CHECK_S", 0.2)  # retention checked every 0.2 s, not every minute
    loaded = loaded_config(tmp_path, own_broker.port, privacy={"retention": {"events_days": 1}})
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_event(terminal: str, payload: dict[str, Any], duplicate: bool) -> None:
        with lock:
            received.append(payload)

    hub = Monitor(loaded.config.mqtt, loaded.config.store.id, client_id="hub-clock", ack=False, on_event=on_event)
    hub.start()
    assert hub.subscribed.wait(10)
    assert wait_until(lambda: session_saved(own_broker.workdir, "hub-clock", hub.topics.event("+")), 10)
    own_broker.kill()  # everything below waits in the outbox while the clock steps
    with Daemon(loaded) as daemon:
        outbox = daemon.outbox
        for step, offset in enumerate((0.0, +DAY + 3600, -2 * DAY)):
            stepped_clock(offset)
            for i in range(1000):
                daemon.agent.emit(BarcodeScanned(captured_at=clock.now(), device="till", code=f"{step}-{i:04d}"))
            assert outbox.flush(30)
            checks = outbox.expiry_checks
            assert wait_until(lambda c=checks: outbox.expiry_checks >= c + 2, 10), "retention ran after the step"
        stats = outbox.stats()
        assert stats["depth"] == 3000 and "expired" not in stats["dropped"], stats
        own_broker.start()
        assert hub.wait_for(lambda: len({p["event_id"] for p in received}) >= 3000, 120), len(received)
        assert outbox.wait_empty(30)
    hub.stop()
    unique: dict[str, dict[str, Any]] = {}
    for payload in received:
        unique.setdefault(payload["event_id"], payload)
    codes = [p["code"] for p in unique.values()]
    assert codes == [f"{s}-{i:04d}" for s in range(3) for i in range(1000)], "in the order they were emitted"
    seqs = [p["seq"] for p in unique.values()]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3000
    emitted = [p["emitted_at"][:10] for p in unique.values()]
    assert len(set(emitted)) >= 2, "the stamps did step"
    synced = clock.synchronised()
    for payload in list(unique.values())[::300]:
        validator("barcode.scanned").validate(payload)
        assert payload["clock_synced"] is synced
    print(
        f"\nclock steps +1 d 1 h, -2 d: 3000 accepted, {len(unique)} delivered, 0 expired, {len(received) - 3000} dup"
    )


def test_the_clock_says_what_the_kernel_says(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = clock._kernel_synchronised()
    assert kernel is not None, "adjtimex answers on Linux"
    monkeypatch.delenv("STORE_AGENT_CLOCK_SYNCED", raising=False)
    monkeypatch.setattr(clock, "_cached", None)
    assert clock.synchronised() == kernel
    monkeypatch.setenv("STORE_AGENT_CLOCK_SYNCED", "0")
    assert clock.synchronised() is False
    before = clock.now()
    clock.set_offset(-DAY)
    try:
        assert before - DAY - 1 < clock.now() < before - DAY + 5
        assert abs(clock.now_ns() / 1e9 - clock.now()) < 1
    finally:
        clock.set_offset(0.0)


def test_the_agent_takes_wall_time_from_one_function() -> None:
    """Delivery, events and the runtime read the wall clock only through ``agent.clock`` (so a test can step it,
    and a reader sees every use of it); what they measure runs on ``time.monotonic``."""
    offenders = []
    for path in [REPO / "agent" / "events.py", *sorted((REPO / "agent" / "delivery").glob("*.py")),
                 *sorted((REPO / "agent" / "runtime").glob("*.py"))]:  # fmt: skip
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "time.time(" in line or "time.time_ns(" in line:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []
