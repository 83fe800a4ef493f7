"""Which members each queued event names, for erasure; and scrubbing the outbox file after one.

Erasure must find a member wherever a payload names them (``agent.events.member_ids``: a top-level
``member_id``, ``identity.member_id`` of people and zone events, lists under ``members``), not only in the
``member_id`` column (the first member). ``event_members`` holds every (member, event) pair; a trigger drops a
row's pairs when the row goes (acknowledged, trimmed, expired, erased), so a delivered event leaves no member id
behind in the index.
"""

from __future__ import annotations

import json
import logging
import sqlite3

from agent.events import member_ids

logger = logging.getLogger(__name__)

#: Every member a stored event names (``member_id`` holds the first): added after the first releases, filled from
#: the payloads of the rows already there when the table is made.
MEMBERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS event_members (
    member_id TEXT NOT NULL, event_id TEXT NOT NULL, PRIMARY KEY (member_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS event_members_by_event ON event_members(event_id);
CREATE TRIGGER IF NOT EXISTS event_members_gone AFTER DELETE ON events WHEN OLD.member_id IS NOT NULL
BEGIN DELETE FROM event_members WHERE event_id = OLD.event_id; END;
"""


def add_member_index(conn: sqlite3.Connection) -> None:
    """Make ``event_members``; an outbox from before it gets its rows indexed from their payloads, once."""
    existed = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'event_members'").fetchone() is not None
    conn.executescript(MEMBERS_SCHEMA)  # before the committer starts: nothing else writes yet
    if existed:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute("SELECT event_id, payload FROM events").fetchall()
        indexed = index_members(conn, [(e, bytes(p)) for e, p in rows], set_column=True)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if indexed:
        logger.info("outbox: indexed the members of %d queued events for erasure", indexed)


def scrub(conn: sqlite3.Connection) -> None:
    """After an erasure: no freed page (``VACUUM``) and no old WAL frame (a truncating checkpoint) keeps what
    was deleted. A reader holding an old snapshot can make the checkpoint stop short: logged, retried at the
    next erasure or by SQLite's own checkpoints."""
    if int(conn.execute("PRAGMA freelist_count").fetchone()[0]):
        conn.execute("VACUUM")
    busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy and int(busy[0]):
        logger.warning("outbox: the WAL could not be emptied after an erasure (a reader was busy)")


def members_of(payload: bytes) -> list[str]:
    try:
        return member_ids(json.loads(payload))
    except ValueError:
        return []


def index_members(conn: sqlite3.Connection, items: list[tuple[str, bytes]], set_column: bool = False) -> int:
    """Record every member each (event_id, payload) names; ``set_column`` also fills ``events.member_id`` (rows
    from before the index, whose column held a top-level member only). How many events named a member."""
    pairs: list[tuple[str, str]] = []
    firsts: list[tuple[str, str]] = []
    for event_id, payload in items:
        members = members_of(payload)
        pairs.extend((member, event_id) for member in members)
        if members and set_column:
            firsts.append((members[0], event_id))
    if firsts:
        conn.executemany("UPDATE events SET member_id = ? WHERE event_id = ? AND member_id IS NULL", firsts)
    if pairs:
        conn.executemany("INSERT OR IGNORE INTO event_members (member_id, event_id) VALUES (?, ?)", pairs)
    return len({event_id for _, event_id in pairs})
