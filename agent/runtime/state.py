"""Small durable counters in the state directory: the boot counter and the event sequence.

The sequence uses a high-water reservation so that it keeps rising across
restarts (a crash skips at most one block) without a disk write per event.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

SEQ_BLOCK = 10_000


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


class StateStore:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._path = state_dir / "counters.json"
        self._lock = threading.Lock()
        data = self._load()
        self.boot_count = int(data.get("boot_count", 0)) + 1
        self._next_seq = int(data.get("seq_reserved", 0)) + 1
        self._reserved = self._next_seq - 1
        self._save()

    def _load(self) -> dict[str, int]:
        try:
            value = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise RuntimeError(
                f"state file {self._path} is unreadable ({exc}); move it aside to reset counters"
            ) from exc
        return value if isinstance(value, dict) else {}

    def _save(self) -> None:
        payload = {"boot_count": self.boot_count, "seq_reserved": self._reserved}
        write_atomic(self._path, json.dumps(payload).encode())

    def next_seq(self) -> int:
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            if seq > self._reserved:
                self._reserved = seq + SEQ_BLOCK - 1
                self._save()
            return seq
