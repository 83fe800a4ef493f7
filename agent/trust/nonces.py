"""The nonces of commands already executed, kept on disk until they expire, so a replay is refused even after
a restart. A nonce is remembered until its command's expiry (plus the tolerated clock skew)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path


class NonceStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, forget_at REAL NOT NULL)")

    def claim(self, nonce: str, forget_at: float) -> bool:
        """Record ``nonce`` once (durably); False when it was already used."""
        with self._lock:
            self._conn.execute("DELETE FROM nonces WHERE forget_at < ?", (time.time(),))
            try:
                self._conn.execute("INSERT INTO nonces VALUES (?, ?)", (nonce, forget_at))
            except sqlite3.IntegrityError:
                return False
            return True

    def close(self) -> None:
        with self._lock:
            self._conn.close()
