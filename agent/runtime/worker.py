"""One thread per (pipeline, source): take an item, process it, hand the events to delivery."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from agent.events import EventBody
from agent.pipelines.stage import Stage
from agent.runtime.queues import QueueClosed, StageQueue
from agent.runtime.rates import RateWindow

Emit = Callable[[EventBody], object]


class Worker:
    def __init__(
        self,
        pipeline: Stage[Any],
        queue: StageQueue[Any],
        emit: Emit,
        stop: threading.Event,
        drain_s: float = 2.0,
    ) -> None:
        self.pipeline = pipeline
        self.queue = queue
        self.emit = emit
        self.stop = stop
        self.drain_s = drain_s
        self.name = f"{pipeline.name}/{pipeline.source}"
        self.logger = logging.getLogger(f"agent.worker.{pipeline.name}.{pipeline.source}")
        self.processed = 0
        self.emitted = 0
        self.errors: Counter[str] = Counter()
        self.busy_s = 0.0
        self.last_activity_mono: float | None = None
        self.rates = RateWindow()
        self.thread = threading.Thread(target=self._run, name=f"worker-{self.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        deadline: float | None = None
        try:
            while True:
                if self.stop.is_set():
                    deadline = deadline or time.monotonic() + self.drain_s
                    if time.monotonic() > deadline:
                        self.logger.warning("stopping with %d items not processed", len(self.queue))
                        break
                try:
                    item = self.queue.get(timeout=0.2)
                except QueueClosed:
                    break
                if item is None:
                    continue
                capture = getattr(item, "capture", None)
                if self._handle(functools.partial(self.pipeline.process, item)):
                    done = time.monotonic_ns()
                    latency = None if capture is None else (done - capture.mono_ns) / 1e9
                    self.rates.add(done / 1e9, latency)
        finally:
            self._handle(self.pipeline.finish)

    def _handle(self, step: Callable[[], Iterable[EventBody]]) -> bool:
        """Run one step and emit its events; ``False`` if it failed (counted and logged)."""
        started = time.monotonic()
        try:
            bodies = list(step())
        except Exception as exc:
            self.errors[type(exc).__name__] += 1
            if sum(self.errors.values()) <= 10 or self.logger.isEnabledFor(logging.DEBUG):
                self.logger.exception("pipeline step failed")
            return False
        finally:
            self.busy_s += time.monotonic() - started
            self.last_activity_mono = time.monotonic()
        self.processed += 1
        for body in bodies:
            self.emit(body)
            self.emitted += 1
        return True

    def stats(self) -> dict[str, Any]:
        queue = self.queue.stats()
        return {
            "processed": self.processed,
            "fps": round(self.rates.fps(), 2),
            "latency_ms": self.rates.latency_ms(),
            "dropped": sum(queue["dropped"].values()),
            "emitted": self.emitted,
            "errors": dict(self.errors),
            "busy_s": round(self.busy_s, 3),
            "last_activity_age_s": None
            if self.last_activity_mono is None
            else round(time.monotonic() - self.last_activity_mono, 3),
            "queue": queue,
            **({"pipeline": extra} if (extra := self.pipeline.health()) else {}),
        }
