"""The hub's event store: every verified event once, in SQLite (WAL), shared by the hub's consumer processes.

Terminals send an event again until the hub acknowledges it (after a reconnect, after ``hub_ack_timeout_s``),
and with several consumers in one shared subscription group a resent event may reach another process than the
first copy did. The event id is the primary key and rows go in with ``INSERT OR IGNORE``, so each event is stored
once whichever process sees it and however often; a consumer acknowledges an event only after the transaction
that holds it committed (``synchronous=FULL``: it survives a power loss), so an acknowledged event is never lost.

Erasure reaches the hub too: every member an event names (at any depth, :func:`agent.events.member_ids`) is
indexed by ``member_ref`` (the store-scoped pseudonym member.erased carries), and :meth:`EventStore.erase` deletes
those events, scrubs the file, and remembers the member so a copy a terminal sends later is not stored again. What
stays of an erased event names no one: its id, terminal and sequence number (``erased_events``), so the hub can
still show that nothing a terminal sent went missing. It
runs when a ``member.erased`` event is stored (an erasure at a terminal) and from ``hub fleet erase`` (one the hub
starts), so an erased member's past events do not outlive them at the hub.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.events import member_ids
from agent.identity.sync import member_ref

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
CREATE TABLE IF NOT EXISTS event_members (
    member_ref TEXT NOT NULL, event_id TEXT NOT NULL, PRIMARY KEY (member_ref, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS event_members_by_event ON event_members (event_id);
CREATE TRIGGER IF NOT EXISTS event_members_gone AFTER DELETE ON events
BEGIN DELETE FROM event_members WHERE event_id = OLD.event_id; END;
CREATE TABLE IF NOT EXISTS erased_events (
    event_id TEXT PRIMARY KEY, store_id TEXT NOT NULL, terminal_id TEXT NOT NULL, seq INTEGER, erased_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS erased_members (
    store_id TEXT NOT NULL, member_ref TEXT NOT NULL, erased_at REAL NOT NULL, PRIMARY KEY (store_id, member_ref)
) WITHOUT ROWID;
"""
ERASED_TYPE = "member.erased"


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
        #: Events not stored because they name a member erased before they arrived.
        self.refused_erased = 0
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
        erasures: list[tuple[str, str]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            added = 0
            for e in events:
                payload = json.loads(e.payload)
                refs = [member_ref(e.store_id, m) for m in member_ids(payload)]
                if refs and self._any_erased(e.store_id, refs):
                    self.refused_erased += 1  # sent again after the member's erasure: acknowledged, not kept
                    conn.execute(
                        "INSERT OR IGNORE INTO erased_events VALUES (?, ?, ?, ?, ?)",
                        (e.event_id, e.store_id, e.terminal_id, e.seq, now),
                    )
                    continue
                row = (e.event_id, e.store_id, e.terminal_id, e.type, e.seq, e.payload, now, self.consumer)
                if not conn.execute("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row).rowcount:
                    continue
                added += 1
                conn.executemany("INSERT OR IGNORE INTO event_members VALUES (?, ?)", [(r, e.event_id) for r in refs])
                if e.type == ERASED_TYPE and isinstance(payload.get("member_ref"), str):
                    erasures.append((e.store_id, payload["member_ref"]))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        for store_id, ref in erasures:
            self.erase(store_id, ref)
        return added

    def _any_erased(self, store_id: str, refs: list[str]) -> bool:
        marks = ",".join("?" * len(refs))
        query = f"SELECT 1 FROM erased_members WHERE store_id = ? AND member_ref IN ({marks}) LIMIT 1"
        return self._conn.execute(query, (store_id, *refs)).fetchone() is not None

    def erase(self, store_id: str, ref: str) -> int:
        """Delete every stored event of ``store_id`` that names the member, keep none of its bytes in the file
        (VACUUM, WAL truncated), and refuse the member's events from now on; how many events went."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT OR IGNORE INTO erased_members VALUES (?, ?, ?)", (store_id, ref, time.time()))
            named = "SELECT event_id FROM event_members WHERE member_ref = ?"
            conn.execute(
                "INSERT OR IGNORE INTO erased_events SELECT event_id, store_id, terminal_id, seq, ? FROM events "
                f"WHERE store_id = ? AND event_id IN ({named})",
                (time.time(), store_id, ref),
            )
            gone = conn.execute(
                f"DELETE FROM events WHERE store_id = ? AND event_id IN ({named})", (store_id, ref)
            ).rowcount
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if gone:
            conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(gone)

    def count(self, store_id: str | None = None) -> int:
        if store_id is None:
            return int(self._conn.execute("SELECT count(*) FROM events").fetchone()[0])
        return int(self._conn.execute("SELECT count(*) FROM events WHERE store_id = ?", (store_id,)).fetchone()[0])

    def event_ids(self) -> set[str]:
        return {str(r[0]) for r in self._conn.execute("SELECT event_id FROM events")}

    def erased_events(self) -> list[tuple[str, str, int | None, str]]:
        """(store, terminal, seq, event id) of every event deleted by an erasure or refused after it: accounted
        for, naming no one."""
        rows = self._conn.execute("SELECT store_id, terminal_id, seq, event_id FROM erased_events")
        return [(str(s), str(t), None if q is None else int(q), str(e)) for s, t, q, e in rows]

    def by_consumer(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT consumer, count(*) FROM events GROUP BY consumer")
        return {str(c): int(n) for c, n in rows}

    def close(self) -> None:
        self._conn.close()
