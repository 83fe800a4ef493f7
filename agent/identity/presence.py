"""Who is at this terminal: the member identified here lately (face writes it, speech reads it)."""

from __future__ import annotations

import threading
import time


class RecentMember:
    """The member last identified at this terminal, for ``window_s`` seconds; forgotten when erased.

    ``current()`` is called from other pipelines' threads: the member id or None.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._member: str | None = None
        self._at = 0.0

    def seen(self, member_id: str, mono_s: float | None = None) -> None:
        with self._lock:
            self._member, self._at = member_id, time.monotonic() if mono_s is None else mono_s

    def forget(self, member_id: str) -> int:
        """Erasure hook: drop the member if they are the one remembered (no queued items: returns 0)."""
        with self._lock:
            if self._member == member_id:
                self._member = None
        return 0

    def current(self) -> str | None:
        with self._lock:
            if self._member is not None and time.monotonic() - self._at <= self.window_s:
                return self._member
            return None
