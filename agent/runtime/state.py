"""Small durable counters in the state directory: the boot counter and the event sequence.

The sequence uses a high-water reservation so that it keeps rising across
restarts (a crash skips at most one block) without a disk write per event.

A failed save (a full disk, a read-only remount) never reaches the caller:
``next_seq`` runs inside ``emit`` on every worker thread. The counters go on in
memory, the failure goes to the ``StorageMonitor``, and the save is retried
every few seconds until it succeeds. A counters file that cannot be read at
start is refused with one line (``StateFileError``, exit 78): guessing the
sequence would hand out numbers the hub has already seen.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from agent.errors import AgentError
from agent.storage import StorageMonitor

SEQ_BLOCK = 10_000
#: After a failed save, the next attempt waits this long (a full disk is not retried per event).
SAVE_RETRY_S = 5.0
COUNTERS_FILE = "counters.json"


class StateFileError(AgentError):
    """The counters file exists but cannot be read or parsed (exit 78: a person must look at it)."""


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a power cut leaves the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_counters(path: Path) -> dict[str, int]:
    """``boot_count`` and ``seq_reserved`` from the counters file (empty if there is none yet)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(value, dict):
            raise ValueError(f"a JSON {type(value).__name__}, not an object")
        counters = {key: value.get(key, 0) for key in ("boot_count", "seq_reserved")}
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counters.values()):
            raise ValueError(f"boot_count and seq_reserved must be counts, got {counters}")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StateFileError(
            f"state file {path} is corrupt or unreadable ({cause}); the event sequence cannot go on safely: move "
            "the file aside (the sequence then restarts at 1) and start again"
        ) from None
    return counters


class StateStore:
    def __init__(self, state_dir: Path, storage: StorageMonitor | None = None) -> None:
        self.dir = state_dir
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateFileError(f"storage.state_dir: cannot create {state_dir}: {exc.strerror or exc}") from None
        self.storage = storage or StorageMonitor(state_dir)
        self._path = state_dir / COUNTERS_FILE
        self._lock = threading.Lock()
        data = read_counters(self._path)
        self.boot_count = data.get("boot_count", 0) + 1
        self._next_seq = data.get("seq_reserved", 0) + 1
        self._reserved = self._next_seq - 1
        self._unsaved = False
        self._retry_at = 0.0
        self._try_save()

    def _try_save(self) -> None:
        """Write the counters; on failure keep them in memory, report, and retry after ``SAVE_RETRY_S``."""
        payload = {"boot_count": self.boot_count, "seq_reserved": self._reserved}
        try:
            write_atomic(self._path, json.dumps(payload).encode())
        except OSError as exc:
            self._unsaved = True
            self._retry_at = time.monotonic() + SAVE_RETRY_S
            detail = f"; the event sequence goes on in memory (reserved to {self._reserved})"
            self.storage.failed("counters", exc, detail)
            return
        if self._unsaved:
            self._unsaved = False
            self.storage.succeeded("counters")

    def next_seq(self) -> int:
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            if seq > self._reserved:
                self._reserved = seq + SEQ_BLOCK - 1
                self._unsaved = True
                self._retry_at = 0.0
            if self._unsaved and time.monotonic() >= self._retry_at:
                self._try_save()
            return seq
