"""The hub's event store: every verified event once, in SQLite (WAL), shared by the hub's consumer processes.

Terminals send an event again until the hub acknowledges it (after a reconnect, after ``hub_ack_timeout_s``),
and with several consumers in one shared subscription group a resent event may reach another process than the
first copy did. The event id is the primary key and rows go in with ``INSERT OR IGNORE``, so each event is stored
once whichever process sees it and however often; a consumer acknowledges an event only after the transaction
that holds it committed (``synchronous=FULL``: it survives a power loss), so an acknowledged event is never lost.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

EVENTS_FILE = "events.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    type TEXT NOT NULL,
    seq INTEGER,
    payload TEXT NOT NULL,
    stored_at REAL NOT NULL,
    consumer TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_terminal ON events (store_id, terminal_id, seq);
"""


@dataclass(frozen=True)
class StoredEvent:
    """One row to store: ids, the type, the terminal's sequence number and the payload as received (JSON)."""

    event_id: str
    store_id: str
    terminal_id: str
    type: str
    seq: int | None
    payload: str


class EventStore:
    """Events de-duplicated by id; safe to share between processes (one connection per process)."""

    def __init__(self, path: Path, consumer: str = "hub") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.consumer = consumer
        # Made in the main thread, used by the connection's network thread (one user at a time).
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(SCHEMA)

    def add(self, events: Sequence[StoredEvent]) -> int:
        """Store a batch in one transaction; how many were new (the rest were stored before)."""
        if not events:
            return 0
        now = time.time()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(e.event_id, e.store_id, e.terminal_id, e.type, e.seq, e.payload, now, self.consumer) for e in events],
            )
            added = conn.total_changes - before
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return added

    def count(self, store_id: str | None = None) -> int:
        if store_id is None:
            return int(self._conn.execute("SELECT count(*) FROM events").fetchone()[0])
        return int(self._conn.execute("SELECT count(*) FROM events WHERE store_id = ?", (store_id,)).fetchone()[0])

    def event_ids(self) -> set[str]:
        return {str(r[0]) for r in self._conn.execute("SELECT event_id FROM events")}

    def by_consumer(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT consumer, count(*) FROM events GROUP BY consumer")
        return {str(c): int(n) for c, n in rows}

    def close(self) -> None:
        self._conn.close()
