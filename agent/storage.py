"""The state directory's health: a full disk, a read-only remount or I/O errors are states, not crashes.

Whatever writes to the state directory (the outbox's committer, the counters file) reports here when a write
fails and when one succeeds again, instead of letting the error escape into a worker thread. The state is the
worst one any writer is in: ``ok``, ``full`` (ENOSPC, SQLITE_FULL, a quota), ``read-only`` (EROFS, a file system
the kernel remounted read-only after errors) or ``error`` (EIO and anything else), with the real cause. The
daemon turns each change into a ``storage.state`` event and ``health.storage``; the log gets one line per change
and then at most one reminder a minute, never a traceback per retry.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.compat import StrEnum

logger = logging.getLogger(__name__)

#: How often a writer that keeps failing in the same way may log it again.
REMIND_S = 60.0


class StorageState(StrEnum):
    OK = "ok"
    FULL = "full"
    READ_ONLY = "read-only"
    ERROR = "error"


#: Worst last: the state reported when writers disagree.
SEVERITY = {StorageState.OK: 0, StorageState.FULL: 1, StorageState.ERROR: 2, StorageState.READ_ONLY: 3}
_SQLITE_FULL = 13
_SQLITE_READONLY = 8


def classify(directory: Path, exc: BaseException) -> StorageState:
    """What a failed write means, from the error and the file system itself (statvfs)."""
    try:
        fs = os.statvfs(directory)
    except OSError:
        fs = None
    if fs is not None and fs.f_flag & os.ST_RDONLY:
        return StorageState.READ_ONLY
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno == errno.EROFS:
            return StorageState.READ_ONLY
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageState.FULL
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        if code == _SQLITE_FULL:
            return StorageState.FULL
        if code == _SQLITE_READONLY:
            return StorageState.READ_ONLY
    if fs is not None and fs.f_bavail == 0:
        return StorageState.FULL
    return _probe(directory)


def _probe(directory: Path) -> StorageState:
    """Write a byte beside the failing file: ext4's ``errors=remount-ro`` marks the file system read-only inside
    (EROFS on every write) while statvfs still says read-write, and SQLite reports only "disk I/O error"."""
    probe = directory / ".storage-probe"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return StorageState.READ_ONLY
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageState.FULL
    return StorageState.ERROR


def describe(exc: BaseException) -> str:
    """The real cause in one line: the OS error or SQLite's message with its code name."""
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", None)
        return f"{exc} ({name})" if name else str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror} (errno {errno.errorcode.get(exc.errno or 0, exc.errno)}){where}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class _Problem:
    state: StorageState
    reason: str
    since: float
    failures: int = 1
    reminded: float = 0.0


class StorageMonitor:
    """Per writer (``outbox``, ``counters``): the current problem, if any; thread-safe."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._problems: dict[str, _Problem] = {}
        #: Bumped on every change of the overall state or reason, for whoever publishes it.
        self.generation = 0
        self.changes = 0

    def failed(self, writer: str, exc: BaseException, detail: str = "") -> StorageState:
        """``writer``'s write failed with ``exc``; logs a change at once and a lasting problem once a minute."""
        state = classify(self.directory, exc)
        reason = describe(exc)
        now = time.monotonic()
        with self._lock:
            problem = self._problems.get(writer)
            changed = problem is None or problem.state is not state or problem.reason != reason
            if problem is None or changed:
                problem = self._problems[writer] = _Problem(state, reason, now, reminded=now)
                self._bump()
                log_now = True
            else:
                problem.failures += 1
                log_now = now - problem.reminded >= REMIND_S
                if log_now:
                    problem.reminded = now
            failures, since = problem.failures, problem.since
        if changed:
            logger.error("storage %s (%s): %s writes fail: %s%s", state, self.directory, writer, reason, detail)
        elif log_now:
            logger.error(
                "storage still %s for %.0f s (%s): %d failed %s writes; last: %s%s",
                state,
                now - since,
                self.directory,
                failures,
                writer,
                reason,
                detail,
            )
        return state

    def succeeded(self, writer: str) -> None:
        """``writer`` wrote again: its problem is over."""
        with self._lock:
            problem = self._problems.pop(writer, None)
            if problem is None:
                return
            self._bump()
        logger.warning(
            "storage %s: %s writes succeed again after %.1f s (%d failed attempts, was %s: %s)",
            self.directory,
            writer,
            time.monotonic() - problem.since,
            problem.failures,
            problem.state,
            problem.reason,
        )

    def _bump(self) -> None:
        self.generation += 1
        self.changes += 1

    def state(self) -> tuple[StorageState, str | None]:
        """The worst state any writer is in, and its cause."""
        with self._lock:
            if not self._problems:
                return StorageState.OK, None
            worst = max(self._problems.items(), key=lambda kv: SEVERITY[kv[1].state])
            return worst[1].state, f"{worst[0]}: {worst[1].reason}"

    def stats(self) -> dict[str, Any]:
        """For ``health.storage``: state, reason, since when, per-writer failures, and the free space."""
        state, reason = self.state()
        with self._lock:
            now = time.monotonic()
            since = min((p.since for p in self._problems.values()), default=None)
            writers = {w: {"state": p.state.value, "failures": p.failures} for w, p in self._problems.items()}
        try:
            fs = os.statvfs(self.directory)
            free: int | None = fs.f_bavail * fs.f_frsize
        except OSError:
            free = None
        return {
            "state": state.value,
            "reason": reason,
            "for_s": None if since is None else round(now - since, 1),
            "writers": writers,
            "free_bytes": free,
            "changes": self.changes,
        }
