"""One thread per device: open, read with a timeout, fan items out, reopen with backoff on failure.

The runner owns the device's state (online, offline, degraded, finished) and
reports every change, measures its rate, and treats a device that produces
nothing for ``stale_after_s`` as failed (the frame-age watchdog).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from agent.backoff import Backoff
from agent.runtime.queues import StageQueue
from drivers.base import DeviceError, DeviceState, Driver, EndOfStream
from drivers.registry import DeviceKind

StateListener = Callable[[str, DeviceKind, DeviceState, DeviceState, str | None], None]


class SourceRunner:
    def __init__(
        self,
        kind: DeviceKind,
        driver: Driver[Any, Any],
        outputs: list[StageQueue[Any]],
        stop: threading.Event,
        on_state: StateListener,
        backoff: Backoff | None = None,
    ) -> None:
        self.kind = kind
        self.driver = driver
        self.name = driver.name
        self.outputs = outputs
        self.stop = stop
        self.on_state = on_state
        self.backoff = backoff or Backoff()
        self.logger = logging.getLogger(f"agent.source.{driver.name}")
        self.state = DeviceState.STARTING
        self.state_reason: str | None = None
        self.items = 0
        self.errors = 0
        self.reopens = 0
        self.last_item_mono: float | None = None
        self.opened_once = threading.Event()
        self._times: deque[float] = deque(maxlen=64)
        self.thread = threading.Thread(target=self._run, name=f"source-{driver.name}", daemon=True)

    @property
    def finished(self) -> bool:
        return self.state is DeviceState.FINISHED

    def fps(self) -> float:
        """Items per second over the last items seen (0 when stale)."""
        times = list(self._times)
        if len(times) < 2 or time.monotonic() - times[-1] > 2.0:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-6)

    @property
    def goes_stale(self) -> bool:
        """Cameras and microphones deliver all the time; a serial reader is idle until a card or code comes."""
        return self.kind != "serial"

    def fresh(self, max_age_s: float) -> bool:
        """Produced something within ``max_age_s``."""
        if self.finished:
            return True
        return self.last_item_mono is not None and time.monotonic() - self.last_item_mono <= max_age_s

    def watchdog_ok(self) -> bool:
        """For the systemd watchdog: fresh data within the device's ``stale_after_s``; a serial reader not offline."""
        if not self.goes_stale:
            return self.state is not DeviceState.OFFLINE
        return self.fresh(self.driver.options.stale_after_s)

    def _set_state(self, state: DeviceState, reason: str | None = None) -> None:
        if state is self.state:
            return
        previous, self.state, self.state_reason = self.state, state, reason
        log = self.logger.warning if state is DeviceState.OFFLINE else self.logger.info
        log("%s -> %s%s", previous.value, state.value, f" ({reason})" if reason else "")
        self.on_state(self.name, self.kind, state, previous, reason)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                if not self._open():
                    self.opened_once.set()
                    self._sleep_backoff()
                    continue
                self.opened_once.set()
                outcome = self._read_until_failure()
                self._close()
                if outcome == "finished":
                    self._set_state(DeviceState.FINISHED, "replay source exhausted")
                    return
                if outcome == "failed":
                    self.reopens += 1
                    self._sleep_backoff()
        finally:
            self._close()
            self.opened_once.set()
            for queue in self.outputs:
                queue.close()

    def _open(self) -> bool:
        try:
            self.driver.open()
            return True
        except DeviceError as exc:
            self.errors += 1
            self._set_state(DeviceState.OFFLINE, str(exc))
        except Exception as exc:
            self.errors += 1
            self.logger.exception("unexpected error opening %s", self.driver.describe())
            self._set_state(DeviceState.OFFLINE, f"{type(exc).__name__}: {exc}")
        return False

    def _close(self) -> None:
        try:
            self.driver.close()
        except Exception:
            self.logger.exception("error closing %s", self.driver.describe())

    def _sleep_backoff(self) -> None:
        delay = self.backoff.next_delay()
        self.logger.debug("reopening in %.1f s", delay)
        self.stop.wait(delay)

    def _read_until_failure(self) -> str:
        """Read until stop ('stopped'), end of replay ('finished') or a failure ('failed')."""
        opts = self.driver.options
        opened_at = time.monotonic()
        while not self.stop.is_set():
            try:
                item = self.driver.read(opts.read_timeout_s)
            except EndOfStream:
                return "finished"
            except DeviceError as exc:
                self.errors += 1
                self._set_state(DeviceState.OFFLINE, str(exc))
                return "failed"
            except Exception as exc:
                self.errors += 1
                self.logger.exception("unexpected error reading %s", self.driver.describe())
                self._set_state(DeviceState.OFFLINE, f"{type(exc).__name__}: {exc}")
                return "failed"
            now = time.monotonic()
            if item is None:
                since = now - (
                    self.last_item_mono if self.last_item_mono and self.last_item_mono > opened_at else opened_at
                )
                if self.goes_stale and since > opts.stale_after_s:
                    self._set_state(DeviceState.OFFLINE, f"no data for {since:.0f} s")
                    return "failed"
                continue
            self.items += 1
            self.last_item_mono = now
            self._times.append(now)
            if self.state is not DeviceState.ONLINE:
                self._set_state(DeviceState.ONLINE)
                self.backoff.reset()
            for queue in self.outputs:
                queue.put(item, self.stop)
        return "stopped"

    def stats(self) -> dict[str, Any]:
        age = None if self.last_item_mono is None else round(time.monotonic() - self.last_item_mono, 3)
        return {
            "kind": self.kind,
            "state": self.state.value,
            "reason": self.state_reason,
            "fps": round(self.fps(), 2),
            "items": self.items,
            "last_item_age_s": age,
            "errors": self.errors,
            "reopens": self.reopens,
            "description": self.driver.describe(),
        }
