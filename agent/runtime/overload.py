"""Graceful overload: shed load in a stated order when pipelines fall behind their sources, undo it when they
keep up again.

Without it a board that cannot keep up drops frames at random in every latest-wins queue, so every pipeline
gets worse at once and nobody is told. Instead the controller watches each worker over short intervals: a
worker is *behind* when its queue dropped items, or it processed under 90% of what its source put in. Behind
in at least 80% of the checks over ``overload.behind_after_s`` takes the next step of ``overload.steps`` (face
detector on every 2nd frame, person detector half as often, re-identification half as often, product crops at
half the rate); behind in at most 10% of the checks over ``overload.recover_after_s`` undoes the last step
taken. (Shares, not unbroken runs: on a busy board an isolated drop every few seconds must neither shed load nor
keep it shed for ever; a 30-minute run with one drop every ~10 s never recovered under the unbroken rule.) A step
retaken soon after it was undone doubles its own recovery time, so a board on the edge does not flap.
``health.degraded`` lists the steps in force.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from agent import clock
from agent.config.overload import OverloadSection
from agent.events import iso_time
from agent.runtime.worker import Worker

logger = logging.getLogger(__name__)

CHECK_S = 0.5
#: Drops that say nothing about load (the agent stopping).
NOT_LOAD = frozenset({"closed", "shutdown"})
MAX_RECOVER_S = 3600.0
#: Share of behind checks over ``behind_after_s`` that takes a step, and over ``recover_after_s`` that still
#: allows undoing one.
TAKE_SHARE = 0.8
UNDO_SHARE = 0.1


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
        self._checks: deque[tuple[float, bool]] = deque()  # (time, behind) since the last change of steps
        self._changed_at = time.monotonic()
        self._recover_s = dict.fromkeys(self.steps, settings.recover_after_s)
        self._undone_at: dict[str, float] = {}
        self._last: dict[str, tuple[int, int, int]] = {}
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="overload", daemon=True)

    def start(self, now: float | None = None) -> None:
        self.reset(time.monotonic() if now is None else now)
        self.thread.start()

    def reset(self, now: float) -> None:
        """Counting starts now (the workers' counters as they are)."""
        self._snapshot()
        self._changed_at = now
        self._checks.clear()

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
        self.history.append({"step": step, "action": "taken" if active else "undone", "at": iso_time(clock.now())})
        log = logger.warning if active else logger.info
        log("overload: %s %s (%s); in force: %s", "taking" if active else "undoing", step, why,
            ", ".join(self.taken) or "none")  # fmt: skip

    def _share(self, now: float, span: float) -> float | None:
        """Share of behind checks over the last ``span`` seconds; ``None`` until that long since the last change."""
        if now - self._changed_at < span:
            return None
        recent = [behind for at, behind in self._checks if at > now - span]
        return sum(recent) / len(recent) if recent else None

    def evaluate(self, now: float) -> None:
        """One check: take the next step, undo the last one, or nothing."""
        behind = self._behind()
        with self._lock:
            self.behind_now = behind
            self._checks.append((now, bool(behind)))
            keep = max([self.settings.behind_after_s, *self._recover_s.values()])
            while self._checks and self._checks[0][0] <= now - keep:
                self._checks.popleft()
            share = self._share(now, self.settings.behind_after_s)
            if len(self.taken) < len(self.steps) and share is not None and share >= TAKE_SHARE:
                step = self.steps[len(self.taken)]
                undone = self._undone_at.get(step)
                if undone is not None and now - undone < self._recover_s[step]:
                    self._recover_s[step] = min(MAX_RECOVER_S, 2 * self._recover_s[step])
                self.taken.append(step)
                self._changed(now)
                self._apply(step, True, now, f"behind in {share:.0%} of checks: {', '.join(behind) or 'none now'}")
                return
            if not self.taken:
                return
            step = self.taken[-1]
            share = self._share(now, self._recover_s[step])
            if share is not None and share <= UNDO_SHARE:
                self.taken.pop()
                self._undone_at[step] = now
                self._changed(now)
                self._apply(step, False, now, f"behind in {share:.0%} of checks for {self._recover_s[step]:.0f} s")

    def _changed(self, now: float) -> None:
        """After a step is taken or undone, the next decision waits for a full span of checks under it."""
        self._changed_at = now
        self._checks.clear()

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
