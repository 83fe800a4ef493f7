"""Unplug and replug a serial reader 20 times under the real source runner.

The PN532 simulator sits behind a /dev/serial/by-id-style symlink. Each cycle
removes the link and closes the pty (the USB adapter vanishes), then plugs a
new pty in under the same name. The runner must see the device go offline,
reopen it through the link and get a tap again, every time, without any read
blocking past its timeout (so the runner's loop and the watchdog keep turning).
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.backoff import Backoff
from agent.runtime.queues import DropPolicy, QueueClosed, StageQueue
from agent.runtime.source import SourceRunner
from drivers.base import DeviceState, SerialRead
from drivers.serial.pn532_reader import Pn532Options, Pn532Reader
from tests.drivers.simulators import Pn532Simulator, PtyDevice

CYCLES = 20


class TimedReader(Pn532Reader):
    """The real driver, recording how long each read took (the runner's loop must never stall)."""

    longest_read_s = 0.0

    def read(self, timeout: float) -> SerialRead | None:
        started = time.monotonic()
        try:
            return super().read(timeout)
        finally:
            self.longest_read_s = max(self.longest_read_s, time.monotonic() - started)


@pytest.mark.slow
def test_unplug_replug_twenty_times(tmp_path: Path) -> None:
    link = tmp_path / "dev" / "serial" / "by-id" / "usb-Prolific_PL2303-if00-port0"
    device = PtyDevice(link)
    options = Pn532Options(
        name="nfc", type="pn532", port=str(link), poll_interval_s=0.05, response_timeout_s=0.3, read_timeout_s=0.5
    )
    driver = TimedReader(options)
    queue: StageQueue[SerialRead] = StageQueue("serial/nfc", 256, DropPolicy.NEVER_DROP)
    states: list[tuple[float, DeviceState]] = []
    changed = threading.Condition()

    def on_state(name: str, kind: Any, state: DeviceState, previous: DeviceState, reason: str | None) -> None:
        with changed:
            states.append((time.monotonic(), state))
            changed.notify_all()

    def wait_for(state: DeviceState, since: int, timeout: float) -> float:
        with changed:
            assert changed.wait_for(lambda: any(s is state for _, s in states[since:]), timeout), (
                f"no {state.value} within {timeout} s; states: {[s.value for _, s in states]}"
            )
            return next(t for t, s in states[since:] if s is state)

    stop = threading.Event()
    runner = SourceRunner("serial", driver, [queue], stop, on_state, Backoff(initial_s=0.2, cap_s=2.0))
    recoveries: list[float] = []
    detections: list[float] = []
    with Pn532Simulator(device) as sim:
        sim.card = bytes.fromhex("04A1B2C3D4E580")
        runner.start()
        try:
            wait_for(DeviceState.ONLINE, 0, 10)
            for _ in range(CYCLES):
                mark = len(states)
                unplugged = time.monotonic()
                device.unplug()
                detections.append(wait_for(DeviceState.OFFLINE, mark, 10) - unplugged)
                time.sleep(0.3)  # the adapter is out for a moment
                mark = len(states)
                device.plug()
                plugged = time.monotonic()
                recoveries.append(wait_for(DeviceState.ONLINE, mark, 10) - plugged)
                assert runner.thread.is_alive()
        finally:
            stop.set()
            runner.thread.join(5)
    assert not runner.thread.is_alive()
    taps = []
    with contextlib.suppress(QueueClosed):
        while (item := queue.get(0)) is not None:
            taps.append(item.value)
    # the reader re-handshakes after each replug and reports the card still on it once per session
    assert taps == ["04A1B2C3D4E580"] * (CYCLES + 1)
    assert runner.reopens >= CYCLES
    assert driver.longest_read_s < options.read_timeout_s + 1.0
    assert max(recoveries) < 10.0
    print(
        f"\nunplug->offline median {statistics.median(detections):.3f} s max {max(detections):.3f} s; "
        f"replug->tap median {statistics.median(recoveries):.3f} s max {max(recoveries):.3f} s; "
        f"longest read {driver.longest_read_s:.3f} s (timeout {options.read_timeout_s} s)"
    )
