"""Bounded queues between a source and a pipeline, each with a named drop policy.

Every drop is counted by reason so ``health`` can show it:
- ``latest-wins`` (video): when full, the oldest item is discarded (reason ``stale``):
  a late frame is worth less than a fresh one.
- ``drop-newest`` (audio): when full, the incoming chunk is discarded (reason
  ``overflow``); chunks carry gap-free sequence numbers, so the consumer sees the
  gap and discards the whole utterance it cut, never half of one.
- ``never-drop`` (serial reads such as a card tap): the producer waits for space.

With ``backpressure=True`` (replay sources that are not paced in real time),
every policy waits for space instead of dropping, so a replay run is
deterministic.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any, Generic, TypeVar

from drivers.compat import StrEnum

T = TypeVar("T")


class DropPolicy(StrEnum):
    LATEST_WINS = "latest-wins"
    DROP_NEWEST = "drop-newest"
    NEVER_DROP = "never-drop"


class QueueClosed(Exception):
    """The producer finished and every item has been taken."""


class StageQueue(Generic[T]):
    def __init__(self, name: str, maxsize: int, policy: DropPolicy, backpressure: bool = False) -> None:
        if maxsize < 1:
            raise ValueError(f"queue {name}: maxsize must be at least 1")
        self.name = name
        self.maxsize = maxsize
        self.policy = policy
        self.backpressure = backpressure
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.put_count = 0
        self.get_count = 0
        self.high_water = 0
        self.dropped: Counter[str] = Counter()
        self.blocked_s = 0.0

    def put(self, item: T, stop: threading.Event) -> bool:
        """Offer ``item``; ``False`` if it was dropped (or the agent is stopping while waiting for space)."""
        with self._cond:
            if self._closed:
                self.dropped["closed"] += 1
                return False
            self.put_count += 1
            if len(self._items) >= self.maxsize:
                if self.backpressure or self.policy is DropPolicy.NEVER_DROP:
                    if not self._wait_for_space(stop):
                        self.dropped["shutdown"] += 1
                        return False
                elif self.policy is DropPolicy.LATEST_WINS:
                    self._items.popleft()
                    self.dropped["stale"] += 1
                else:
                    self.dropped["overflow"] += 1
                    return False
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify()
            return True

    def _wait_for_space(self, stop: threading.Event) -> bool:
        started = time.monotonic()
        try:
            while len(self._items) >= self.maxsize:
                if stop.is_set() or self._closed:
                    return False
                self._cond.wait(0.1)
            return True
        finally:
            self.blocked_s += time.monotonic() - started

    def get(self, timeout: float) -> T | None:
        """The next item, ``None`` after ``timeout``; raises :class:`QueueClosed` once closed and empty."""
        with self._cond:
            if not self._items:
                if self._closed:
                    raise QueueClosed(self.name)
                self._cond.wait(timeout)
                if not self._items:
                    if self._closed:
                        raise QueueClosed(self.name)
                    return None
            item = self._items.popleft()
            self.get_count += 1
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """No more items will come; consumers drain what is left, then see :class:`QueueClosed`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {
                "policy": self.policy.value,
                "depth": len(self._items),
                "max": self.maxsize,
                "high_water": self.high_water,
                "in": self.put_count,
                "out": self.get_count,
                "dropped": dict(self.dropped),
                "blocked_s": round(self.blocked_s, 3),
            }
