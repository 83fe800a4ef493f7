"""Graceful overload: shed load in a stated order when pipelines fall behind their sources, undo it when they
keep up again.

Without it a board that cannot keep up drops frames at random in every latest-wins queue, so every pipeline
gets worse at once and nobody is told. Instead the controller watches each worker over short intervals: a
worker is *behind* when its queue dropped items, or it processed under 90% of what its source put in. Behind
for ``overload.behind_after_s`` takes the next step of ``overload.steps`` (face detector on every 2nd frame,
person detector half as often, re-identification half as often, product crops at half the rate); keeping up
for ``overload.recover_after_s`` undoes the last step taken. A step retaken soon after it was undone doubles
its own recovery time, so a board on the edge does not flap. ``health.degraded`` lists the steps in force.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from agent.config.overload import OverloadSection
from agent.events import iso_time
from agent.runtime.worker import Worker

logger = logging.getLogger(__name__)

CHECK_S = 0.5
#: Drops that say nothing about load (the agent stopping).
NOT_LOAD = frozenset({"closed", "shutdown"})
MAX_RECOVER_S = 3600.0


class OverloadController:
    def __init__(self, settings: OverloadSection, workers: Sequence[Worker], stop: threading.Event) -> None:
        self.settings = settings
        self.workers = list(workers)
        self.stop = stop
        #: The configured steps that some running stage can take, in order.
        self.steps: list[str] = [s for s in settings.steps if any(s in w.pipeline.SHED_STEPS for w in self.workers)]
        self.taken: list[str] = []
        self.history: deque[dict[str, Any]] = deque(maxlen=20)
        self.behind_now: list[str] = []
        self._behind_since: float | None = None
        self._ok_since: float | None = None
        self._recover_s = dict.fromkeys(self.steps, settings.recover_after_s)
        self._undone_at: dict[str, float] = {}
        self._last: dict[str, tuple[int, int, int]] = {}
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="overload", daemon=True)

    def start(self) -> None:
        self._snapshot()
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(CHECK_S):
            try:
                self.evaluate(time.monotonic())
            except Exception:  # never let a bookkeeping error end the thread silently
                logger.exception("overload check failed")

    def _counts(self, worker: Worker) -> tuple[int, int, int]:
        q = worker.queue
        return q.put_count, worker.processed, sum(n for r, n in q.dropped.items() if r not in NOT_LOAD)

    def _snapshot(self) -> None:
        self._last = {w.name: self._counts(w) for w in self.workers}

    def _behind(self) -> list[str]:
        """Workers that dropped items or processed under 90% of their input since the last check."""
        behind = []
        for worker in self.workers:
            put, done, dropped = self._counts(worker)
            put0, done0, dropped0 = self._last.get(worker.name, (put, done, dropped))
            offered = put - put0
            if dropped > dropped0 or (offered >= 5 and done - done0 < 0.9 * offered):
                behind.append(worker.name)
        self._snapshot()
        return behind

    def _apply(self, step: str, active: bool, now: float, why: str) -> None:
        for worker in self.workers:
            worker.pipeline.shed(step, active)
        self.history.append({"step": step, "action": "taken" if active else "undone", "at": iso_time(time.time())})
        log = logger.warning if active else logger.info
        log("overload: %s %s (%s); in force: %s", "taking" if active else "undoing", step, why,
            ", ".join(self.taken) or "none")  # fmt: skip

    def evaluate(self, now: float) -> None:
        """One check: take the next step, undo the last one, or nothing."""
        behind = self._behind()
        with self._lock:
            self.behind_now = behind
            if behind:
                self._ok_since = None
                if self._behind_since is None:
                    self._behind_since = now
                elif now - self._behind_since >= self.settings.behind_after_s and len(self.taken) < len(self.steps):
                    step = self.steps[len(self.taken)]
                    undone = self._undone_at.get(step)
                    if undone is not None and now - undone < self._recover_s[step]:
                        self._recover_s[step] = min(MAX_RECOVER_S, 2 * self._recover_s[step])
                    self.taken.append(step)
                    self._apply(step, True, now, f"behind: {', '.join(behind)}")
                    self._behind_since = now  # the next step only after another full span behind
                return
            self._behind_since = None
            if not self.taken:
                self._ok_since = None
                return
            if self._ok_since is None:
                self._ok_since = now
            step = self.taken[-1]
            if now - self._ok_since >= self._recover_s[step]:
                self.taken.pop()
                self._undone_at[step] = now
                self._apply(step, False, now, f"kept up for {now - self._ok_since:.0f} s")
                self._ok_since = now

    def degraded(self) -> list[str]:
        with self._lock:
            return list(self.taken)

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {
                "steps": list(self.steps),
                "behind": list(self.behind_now),
                "recover_after_s": dict(self._recover_s),
                "history": list(self.history),
            }
