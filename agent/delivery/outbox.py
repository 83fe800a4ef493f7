"""The durable outbox: an event is accepted once it is committed to SQLite, and leaves only when acknowledged.

SQLite in WAL mode with ``synchronous=FULL``; one committer thread owns every
write and commits whatever arrived within ``commit_window_ms`` in one
transaction (one fsync per window instead of per event keeps SD cards alive).
Rows are capped in number and bytes. Over a cap, events are dropped by class
(``agent.events.Retention``): telemetry first, then normal events, oldest
first; protected events (identity, consent, erasure) are never dropped for
space. Every drop is counted by reason and class for ``health``. An event
that carries an anonymous id (a person track, a face visitor) and no member
keeps that id only for ``anonymous_ids_s`` while queued: then the id is
nulled in the stored payload (``privacy.retention.anonymous_track_s``).

Erasure finds a member wherever a payload names them (``agent.events.member_ids``: top-level ``member_id``,
``identity.member_id`` of people and zone events, lists under ``members``): every member of a stored event is in
``event_members``. Deleting the member's rows is followed by a scrub of the file (``VACUUM`` when pages were
freed, a truncating checkpoint of the WAL), so no freed page or old WAL frame keeps them, and a moved-aside
corrupt outbox that holds the member is deleted (what it held was salvaged into this one at start).

A write that fails (a full disk, a read-only remount, I/O errors) is a state,
not a crash: the batch stays in memory and the committer retries with backoff,
reporting to ``agent.storage.StorageMonitor`` (one log line per change, not a
traceback per retry). While writes fail, memory is bounded: past
``MAX_PENDING`` waiting events the oldest telemetry, then normal events are
dropped and counted (``dropped.memory``); protected ones are kept. ``close``
gives up after its timeout, so a stop never outlasts systemd's
``TimeoutStopSec``; what it could not write is counted and logged.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import clock
from agent.backoff import Backoff
from agent.config.schema import OutboxSettings
from agent.delivery import outbox_clock
from agent.delivery.outbox_members import add_member_index, index_members, members_of, scrub
from agent.delivery.salvage import Salvage, salvage
from agent.delivery.sqlite_file import check_integrity, move_aside, open_wal, purge_moved_aside
from agent.delivery.topics import Topics
from agent.events import Event, Retention, compact_json, member_ids
from agent.storage import REMIND_S, StorageMonitor

logger = logging.getLogger(__name__)

#: The outbox file in the state directory.
OUTBOX_FILE = "outbox.sqlite3"

#: Retention class as stored in the ``retention`` column (drop order: highest first).
CLASS_CODE = {Retention.PROTECTED: 0, Retention.NORMAL: 1, Retention.TELEMETRY: 2}
CODE_CLASS = {code: cls for cls, code in CLASS_CODE.items()}
#: Most accepted events waiting for a commit before ``accept`` waits (memory bound if the disk stalls).
MAX_PENDING = 50_000
#: Most events per transaction: a backlog (after a disk stall) is written in steps, each of which can succeed
#: where the whole would not fit; smaller steps while the disk fails, so that any room it regains is used.
MAX_BATCH = 5_000
FAILING_BATCH = 200
#: While writes fail and memory is full, this many of the oldest droppable events go at a time.
SHED_BATCH = 500
EXPIRY_CHECK_S = 60.0
#: ``close`` keeps retrying a failing disk this long, then gives up (systemd's TimeoutStopSec is 20 s).
CLOSE_TIMEOUT_S = 6.0
CLOSING_RETRY_S = 0.5

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retention INTEGER NOT NULL,
    member_id TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_class ON events(retention, id);
CREATE INDEX IF NOT EXISTS events_by_member ON events(member_id) WHERE member_id IS NOT NULL;
"""
#: Added after the first release: when the event's anonymous ids must be nulled (NULL: it carries none).
ANON_COLUMN = "ALTER TABLE events ADD COLUMN anon_until REAL"
ANON_INDEX = "CREATE INDEX IF NOT EXISTS events_by_anon ON events(anon_until) WHERE anon_until IS NOT NULL"
#: Payload fields that hold an anonymous id when the event names no member.
ANONYMOUS_ID_FIELDS = ("track_id", "track", "visitor_id")


def anonymous_ids(payload: dict[str, Any]) -> bool:
    """Whether the payload carries an anonymous id: a track or visitor id, and no member it belongs to."""
    if payload.get("member_id") is not None or payload.get("identity") is not None:
        return False
    return any(payload.get(name) is not None for name in ANONYMOUS_ID_FIELDS)


class OutboxError(Exception):
    """The outbox cannot be used (closed, or its file cannot be opened)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One stored event as the publisher sends it."""

    id: int
    event_id: str
    topic: str
    payload: bytes


#: event_id, topic, payload, retention code, first member, created_at (wall), anon_until and born_mono (monotonic)
_Pending = tuple[str, str, bytes, int, str | None, float, float | None, float]
COLUMNS = "(event_id, topic, payload, retention, member_id, created_at, anon_until, born_mono)"


class Outbox:
    """SQLite outbox implementing ``EventSink``: ``accept`` queues for the next group commit."""

    def __init__(
        self,
        path: Path,
        settings: OutboxSettings,
        topics: Topics,
        *,
        expire_after_s: float | None = None,
        anonymous_ids_s: float | None = None,
        storage: StorageMonitor | None = None,
    ) -> None:
        self.path = path
        self.settings = settings
        self.topics = topics
        self.expire_after_s = expire_after_s
        self.anonymous_ids_s = anonymous_ids_s
        self.storage = storage or StorageMonitor(path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        problem = check_integrity(path)
        self.moved_aside: Path | None = move_aside(path, problem) if problem else None
        self.salvage: Salvage | None = salvage(self.moved_aside) if self.moved_aside else None
        self._conn = open_wal(path)
        self._conn.executescript(SCHEMA)
        if "anon_until" not in {row[1] for row in self._conn.execute("PRAGMA table_info(events)")}:
            self._conn.execute(ANON_COLUMN)
        self._conn.execute(ANON_INDEX)
        add_member_index(self._conn)
        outbox_clock.prepare(self._conn, anonymous_ids_s)
        self._read = open_wal(path)
        self._read_lock = threading.Lock()
        self._recount(self._conn)
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._ack_rows: set[int] = set()
        self._ack_events: set[str] = set()
        self._jobs: list[tuple[Callable[[sqlite3.Connection], Any], Future[Any]]] = []
        self._closing = False
        self._closed = False
        self.accepted = 0
        self.committed = 0
        self.delivered = 0
        self.commits = 0
        self.dropped: Counter[tuple[str, str]] = Counter()
        self._listeners: list[Callable[[], None]] = []
        self._topic_of: dict[str, str] = {}
        #: Bumped by every erasure or redaction, so a reader holding rows in memory knows to read them again.
        self.erasures = 0
        self._next_expiry = 0.0
        #: How many times retention and the nulling of anonymous ids ran (each at most every EXPIRY_CHECK_S).
        self.expiry_checks = 0
        self.redacted = 0
        #: Events taken in but never written: dropped for memory while the disk failed, or left at a stop.
        self.discarded = 0
        #: Whether the last write failed (the disk is full, read-only or failing).
        self.failing = False
        #: Events the disk never took, published from memory at a stop and confirmed by the broker.
        self.sent_from_memory = 0
        self._writing = False
        self._give_up_at = float("inf")
        self._shed_logged = 0.0
        self.restored = 0
        self._scrub = False
        if self.salvage is not None:
            self._restore(self.salvage)
        self._thread = threading.Thread(target=self._run, name="outbox-commit", daemon=True)
        self._thread.start()
        if self.rows:
            logger.info("outbox %s holds %d undelivered events (%d bytes)", path, self.rows, self.bytes)

    def _restore(self, found: Salvage) -> None:
        """Put what a corrupt outbox still held into the new one, in order, then apply the caps and retention."""
        expired_before = sum(n for (why, _), n in self.dropped.items() if why == "expired")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = conn.total_changes
            conn.executemany(
                f"INSERT OR IGNORE INTO events {COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _aged(found.rows)
            )
            self.restored = conn.total_changes - before
            index_members(conn, [(row[0], row[2]) for row in found.rows], set_column=True)
            self._recount(conn)
            self._trim(conn)
            self.redacted += self._expire(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        expired = sum(n for (why, _), n in self.dropped.items() if why == "expired") - expired_before
        logger.warning(
            "outbox: salvaged %d events from %s (at most %d rows could not be read%s); %d of them dropped as older "
            "than the retention",
            self.restored,
            found.source,
            found.unreadable,
            f"; {found.error}" if found.error else "",
            expired,
        )

    # --- EventSink ----------------------------------------------------------------------

    def accept(self, event: Event) -> None:
        """Queue ``event`` for the next group commit (waits only if the disk is far behind).

        The payload is encoded here, once; the publisher sends the stored bytes as they are.
        """
        payload = event.to_payload()
        members = member_ids(payload)
        member = members[0] if members else None
        born = time.monotonic()  # ages run on the monotonic clock: a wall-clock step neither drops nor keeps
        anon_until = born + self.anonymous_ids_s if self.anonymous_ids_s and anonymous_ids(payload) else None
        topic = self._topic_of.get(event.type)
        if topic is None:
            topic = self._topic_of.setdefault(event.type, self.topics.event(event.type))
        item = (
            event.event_id,
            topic,
            compact_json(payload).encode(),
            CLASS_CODE[event.retention],
            str(member) if member is not None else None,
            event.emitted_at,
            anon_until,
            born,
        )
        with self._cond:
            while len(self._pending) >= MAX_PENDING and not self._closing:
                if self.failing:  # the disk will not catch up: bounded memory, drops counted
                    self._shed()
                    break
                self._cond.wait(0.1)
            if self._closing:
                raise OutboxError(f"outbox {self.path} is closed; event {event.event_id} not accepted")
            self._pending.append(item)
            self.accepted += 1
            if len(self._pending) == 1:  # the committer sleeps through its window; only the first one wakes it
                self._cond.notify_all()

    def _shed(self) -> None:
        """Memory is full while writes fail: drop the oldest telemetry, else normal events (never protected)."""
        for code in (CLASS_CODE[Retention.TELEMETRY], CLASS_CODE[Retention.NORMAL]):
            dropped = 0
            kept: list[_Pending] = []
            for item in self._pending:
                if dropped < SHED_BATCH and item[3] == code:
                    dropped += 1
                else:
                    kept.append(item)
            if dropped:
                self._pending = kept
                self.discarded += dropped
                self.dropped[("memory", CODE_CLASS[code].value)] += dropped
                now = time.monotonic()
                if now - self._shed_logged >= REMIND_S:
                    self._shed_logged = now
                    state, reason = self.storage.state()
                    logger.error(
                        "outbox: storage %s (%s) and %d events wait in memory: dropped the oldest %d %s events "
                        "(%d dropped for memory so far)",
                        state,
                        reason,
                        len(self._pending),
                        dropped,
                        CODE_CLASS[code].value,
                        sum(n for (why, _), n in self.dropped.items() if why == "memory"),
                    )
                return

    def take_unwritten(self) -> list[_Pending]:
        """While writes fail: hand over the events waiting in memory (the daemon publishes them straight to the
        broker before it stops); empty when the disk works. Report the outcome with ``settle_unwritten``."""
        with self._cond:
            # A batch out for a write attempt comes back to the front of pending when the attempt fails.
            self._cond.wait_for(lambda: not self._writing, 2.0)
            if not self.failing:
                return []
            items, self._pending = self._pending, []
            self.discarded += len(items)
            self._cond.notify_all()
        return items

    def settle_unwritten(self, items: list[_Pending], confirmed: list[bool]) -> None:
        """Count what ``take_unwritten`` handed over: confirmed by the broker, or lost (``dropped.unwritable``)."""
        lost = [item for item, ok in zip(items, confirmed, strict=True) if not ok]
        self.sent_from_memory += len(items) - len(lost)
        for item in lost:
            self.dropped[("unwritable", CODE_CLASS[item[3]].value)] += 1
        state, reason = self.storage.state()
        log = logger.error if lost else logger.warning
        log(
            "outbox: stopping while storage is %s (%s): %d events the disk did not take were published from memory, "
            "%d confirmed by the broker, %d lost",
            state,
            reason,
            len(items),
            len(items) - len(lost),
            len(lost),
        )

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Commit everything accepted so far, then close the database.

        If the disk keeps failing for ``timeout`` seconds, what is still in memory is given up (counted in
        ``dropped.unwritable`` and logged with the cause), so the process can stop in time.
        """
        with self._cond:
            if self._closed:
                return
            self._closing = True
            self._give_up_at = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join()
        with self._read_lock:
            with contextlib.suppress(sqlite3.Error):
                self._read.close()
            self._closed = True
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    # --- for the publisher and the daemon ------------------------------------------------

    def add_listener(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs in the committer thread after each commit that added rows (keep it quick)."""
        self._listeners.append(callback)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event accepted before this call is committed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self.accepted
            while self.committed + self.discarded < target and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self.committed + self.discarded >= target

    def wait_empty(self, timeout: float) -> bool:
        """Wait until every row has left (acknowledged, or dropped); each commit wakes the waiters."""
        with self._cond:
            return self._cond.wait_for(lambda: self.rows == 0 or self._closed, timeout) and self.rows == 0

    def fetch(self, after_id: int, limit: int) -> list[Row]:
        """Committed, unacknowledged events with ``id > after_id`` in order (for replay and sending)."""
        with self._cond:
            hidden_rows = set(self._ack_rows)
            hidden_events = set(self._ack_events)
        with self._read_lock:
            if self._closed:
                return []
            try:
                found = self._read.execute(
                    "SELECT id, event_id, topic, payload FROM events WHERE id > ? ORDER BY id LIMIT ?",
                    (after_id, limit + len(hidden_rows) + len(hidden_events)),
                ).fetchall()
            except sqlite3.Error as exc:  # an I/O error reading: nothing to send now, the publisher asks again
                self.storage.failed("outbox-read", exc)
                return []
        rows = [Row(int(i), e, t, bytes(p)) for i, e, t, p in found if i not in hidden_rows and e not in hidden_events]
        return rows[:limit]

    def first_of_topic(self, topic: str) -> Row | None:
        """The oldest committed, unacknowledged event on ``topic`` (the publisher's probe of a held topic)."""
        with self._cond:
            hidden_rows = set(self._ack_rows)
            hidden_events = set(self._ack_events)
        with self._read_lock:
            if self._closed:
                return None
            try:
                found = self._read.execute(
                    "SELECT id, event_id, topic, payload FROM events WHERE topic = ? ORDER BY id LIMIT ?",
                    (topic, 1 + len(hidden_rows) + len(hidden_events)),
                ).fetchall()
            except sqlite3.Error as exc:
                self.storage.failed("outbox-read", exc)
                return None
        rows = [Row(int(i), e, t, bytes(p)) for i, e, t, p in found if i not in hidden_rows and e not in hidden_events]
        return rows[0] if rows else None

    def ack_rows(self, row_ids: Iterable[int]) -> None:
        """Broker acknowledged these rows (``ack: broker``): delete them in the next commit."""
        with self._cond:
            idle = not (self._ack_rows or self._pending)
            self._ack_rows.update(row_ids)
            if idle:
                self._cond.notify_all()

    def ack_events(self, event_ids: Iterable[str]) -> None:
        """The hub acknowledged these events (``ack: hub``): delete them in the next commit."""
        with self._cond:
            self._ack_events.update(event_ids)
            self._cond.notify_all()

    def delete_member_events(self, member_id: str, timeout: float = 30.0) -> int:
        """Erasure: remove every queued event whose payload names ``member_id`` anywhere, scrub the file, and
        delete moved-aside outboxes that hold the member; returns how many events went."""

        def job(conn: sqlite3.Connection) -> int:
            conn.execute("PRAGMA secure_delete = ON")  # freed pages zeroed too, not only the cells
            try:
                gone = conn.execute(
                    "DELETE FROM events WHERE member_id = ? OR event_id IN "
                    "(SELECT event_id FROM event_members WHERE member_id = ?) RETURNING LENGTH(payload)",
                    (member_id, member_id),
                )
                count = self._forget(int(r[0]) for r in gone.fetchall())
                conn.execute("DELETE FROM event_members WHERE member_id = ?", (member_id,))
            finally:
                conn.execute("PRAGMA secure_delete = FAST")
            self._scrub = True
            return count

        with self._cond:
            before = len(self._pending)
            self._pending = [p for p in self._pending if p[4] is None or member_id not in members_of(p[2])]
            in_memory = before - len(self._pending)
            self.accepted -= in_memory
        removed: int = self._submit(job).result(timeout)
        self.erasures += 1
        self.dropped[("erased", "any")] += removed + in_memory
        aside = purge_moved_aside(self.path, member_id)
        logger.info(
            "erased %d queued events of a member%s",
            removed + in_memory,
            f"; deleted {aside} moved-aside outbox file(s) that held them" if aside else "",
        )
        return removed + in_memory

    def _submit(self, job: Callable[[sqlite3.Connection], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._cond:
            if self._closing:
                raise OutboxError(f"outbox {self.path} is closed")
            self._jobs.append((job, future))
            self._cond.notify_all()
        return future

    def stats(self) -> dict[str, Any]:
        """Depth, bytes, oldest age and drop counters, for ``health`` and the ``outbox-stats`` command."""
        with self._read_lock:
            try:
                oldest = (
                    None
                    if self._closed
                    else self._read.execute("SELECT born_mono FROM events ORDER BY id LIMIT 1").fetchone()
                )
            except sqlite3.Error:
                oldest = None
        dropped: dict[str, dict[str, int]] = {}
        for (reason, cls), n in sorted(self.dropped.items()):
            dropped.setdefault(reason, {})[cls] = n
        return {
            "depth": self.rows,
            "bytes": self.bytes,
            "oldest_age_s": round(time.monotonic() - float(oldest[0]), 3) if oldest and oldest[0] is not None else None,
            "max_rows": self.settings.max_rows,
            "max_bytes": self.settings.max_bytes,
            "accepted": self.accepted,
            "committed": self.committed,
            "delivered": self.delivered,
            "commits": self.commits,
            "pending": len(self._pending),
            "failing": self.failing,
            "sent_from_memory": self.sent_from_memory,
            "dropped": dropped,
            "dropped_total": sum(self.dropped.values()),
            "anonymous_ids_redacted": self.redacted,
            "moved_aside": str(self.moved_aside) if self.moved_aside else None,
            "salvaged": self.restored,
            "unreadable": self.salvage.unreadable if self.salvage else 0,
        }

    # --- the committer thread --------------------------------------------------------------

    def _take(self) -> tuple[list[_Pending], set[int], set[str], list[Any], bool] | None:
        window = self.settings.commit_window_ms / 1000.0
        with self._cond:
            while not (self._pending or self._ack_rows or self._ack_events or self._jobs or self._closing):
                self._cond.wait(self._idle_wake_s())
                if self._idle_wake_s() is not None and time.monotonic() >= self._next_expiry:
                    break
            if (self._pending or self._ack_rows) and window > 0 and not self._closing:
                deadline = time.monotonic() + window
                while not self._closing and (remaining := deadline - time.monotonic()) > 0:
                    self._cond.wait(remaining)
            limit = FAILING_BATCH if self.failing else MAX_BATCH
            batch, self._pending = self._pending[:limit], self._pending[limit:]
            rows, self._ack_rows = self._ack_rows, set()
            events, self._ack_events = self._ack_events, set()
            jobs, self._jobs = self._jobs, []
            last = self._closing and not batch and not rows and not events and not jobs
            self._writing = not last
            self._cond.notify_all()
        return None if last else (batch, rows, events, jobs, self._closing)

    def _run(self) -> None:
        backoff = Backoff(initial_s=0.25, cap_s=5.0)
        while True:
            taken = self._take()
            if taken is None:
                return
            batch, rows, events, jobs, _ = taken
            try:
                self._write(batch, rows, events, jobs)
            except (sqlite3.Error, OSError) as exc:
                with self._cond:
                    self._pending[:0] = batch
                    self._ack_rows |= rows
                    self._ack_events |= events
                    self._jobs[:0] = jobs
                    self.failing = True
                    self._writing = False
                    waiting = len(self._pending)
                    self._cond.notify_all()  # accept() waiting for room sheds instead
                self.storage.failed("outbox", exc, f"; {waiting} events wait in memory")
                # Stopping: only events are worth the wait (acks not written cost duplicates at the next start).
                if self._closing and (not waiting or time.monotonic() >= self._give_up_at):
                    self._abandon(exc)
                    return
                self._pause(backoff.next_delay())
                continue
            if self.failing:
                self.failing = False
                backoff.reset()
                self.storage.succeeded("outbox")
            with self._cond:
                self.committed += len(batch)
                self.commits += 1
                self._writing = False
                self._cond.notify_all()
            if batch:
                for listener in self._listeners:
                    listener()

    def _pause(self, seconds: float) -> None:
        """Wait before retrying a failed write; a close cuts it short (retries every ``CLOSING_RETRY_S`` until it
        gives up)."""
        if self._closing:
            time.sleep(min(seconds, CLOSING_RETRY_S))
            return
        deadline = time.monotonic() + seconds
        with self._cond:
            while not self._closing and (remaining := deadline - time.monotonic()) > 0:
                self._cond.wait(remaining)

    def _abandon(self, exc: BaseException) -> None:
        """Stopping, and the disk still fails: count and log what never reached it, and end the committer."""
        with self._cond:
            lost, self._pending = self._pending, []
            jobs, self._jobs = self._jobs, []
            self.discarded += len(lost)
            for item in lost:
                self.dropped[("unwritable", CODE_CLASS[item[3]].value)] += 1
            self._cond.notify_all()
        for _, future in jobs:
            future.set_exception(OutboxError(f"outbox {self.path} could not be written: {exc}"))
        state, reason = self.storage.state()
        if lost:
            logger.error(
                "outbox: stopping while storage is %s (%s): %d accepted events held in memory could not be written "
                "and are lost",
                state,
                reason,
                len(lost),
            )

    def _write(self, batch: list[_Pending], rows: set[int], events: set[str], jobs: list[Any]) -> None:
        conn = self._conn
        results: list[tuple[Future[Any], Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            if batch:
                before = conn.total_changes
                conn.executemany(f"INSERT OR IGNORE INTO events {COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch)
                if conn.total_changes - before == len(batch):
                    self.rows += len(batch)
                    self.bytes += sum(len(p[2]) for p in batch)
                else:
                    self._recount(conn)
                index_members(conn, [(p[0], p[2]) for p in batch if p[4] is not None])
            delivered = self._delete_ids(conn, rows) + self._delete(conn, "event_id", list(events))
            for job, future in jobs:
                results.append((future, job(conn)))
            self._trim(conn)
            redacted = self._expire(conn)
            outbox_clock.record(conn)
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (SQLITE_FULL does): a second ROLLBACK would raise "no transaction
            # is active" and hide the real cause.
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            with contextlib.suppress(sqlite3.Error):
                self._recount(conn)
            raise
        if self._scrub:  # after the commit: an erasure's rows are gone, now their traces in the file
            self._scrub = False
            try:
                scrub(conn)
            except sqlite3.Error as exc:
                logger.warning("outbox: could not scrub the file after an erasure: %s", exc)
        if redacted:  # counted once committed: whoever sees the count (or re-reads on it) reads the nulled ids
            self.redacted += redacted
            self.erasures += 1  # payloads changed under the publisher's read-ahead: it reads them again
            logger.info("outbox: nulled the anonymous ids of %d queued events older than the retention", redacted)
        self.delivered += delivered
        for future, value in results:
            future.set_result(value)

    def _recount(self, conn: sqlite3.Connection) -> None:
        rows, size = conn.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM events").fetchone()
        self.rows, self.bytes = int(rows), int(size)

    def _delete_ids(self, conn: sqlite3.Connection, ids: set[int]) -> int:
        """Acknowledged rows come in long consecutive runs: one range DELETE per run."""
        runs: list[tuple[int, int]] = []
        for row_id in sorted(ids):
            if runs and runs[-1][1] == row_id - 1:
                runs[-1] = (runs[-1][0], row_id)
            else:
                runs.append((row_id, row_id))
        count = 0
        for first, last in runs:
            gone = conn.execute("DELETE FROM events WHERE id BETWEEN ? AND ? RETURNING LENGTH(payload)", (first, last))
            count += self._forget(int(r[0]) for r in gone.fetchall())
        return count

    def _delete(self, conn: sqlite3.Connection, column: str, keys: list[Any]) -> int:
        count = 0
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            gone = conn.execute(f"DELETE FROM events WHERE {column} IN ({marks}) RETURNING LENGTH(payload)", chunk)
            count += self._forget(int(r[0]) for r in gone.fetchall())
        return count

    def _forget(self, sizes: Iterable[int]) -> int:
        """Take deleted rows (their payload sizes) off the row and byte counts; how many there were."""
        sizes = list(sizes)
        self.rows -= len(sizes)
        self.bytes -= sum(sizes)
        return len(sizes)

    def _over(self) -> bool:
        return self.rows > self.settings.max_rows or self.bytes > self.settings.max_bytes

    def _trim(self, conn: sqlite3.Connection) -> None:
        """Drop telemetry, then normal events, oldest first, until under both caps."""
        for cls in (Retention.TELEMETRY, Retention.NORMAL):
            while self._over():
                candidates = conn.execute(
                    "SELECT id, LENGTH(payload) FROM events WHERE retention = ? ORDER BY id LIMIT 512",
                    (CLASS_CODE[cls],),
                ).fetchall()
                if not candidates:
                    break
                victims = []
                for row_id, size in candidates:
                    if not self._over():
                        break
                    victims.append(int(row_id))
                    self.rows -= 1
                    self.bytes -= int(size)
                conn.execute("DELETE FROM events WHERE retention = ? AND id <= ?", (CLASS_CODE[cls], victims[-1]))
                self.dropped[("space", cls.value)] += len(victims)
                logger.warning("outbox full: dropped %d %s events (oldest first)", len(victims), cls.value)
        if self._over():
            logger.error(
                "outbox over its cap with protected events only (%d rows, %d bytes); they are kept",
                self.rows,
                self.bytes,
            )

    def _idle_wake_s(self) -> float | None:
        """How often the committer wakes with nothing to do, to expire events and null anonymous ids."""
        periods = [EXPIRY_CHECK_S] if self.expire_after_s else []
        if self.anonymous_ids_s:
            periods.append(max(1.0, self.anonymous_ids_s / 4))
        return min(periods, default=None)

    def _redact_anonymous(self, conn: sqlite3.Connection) -> int:
        """Null the anonymous ids of queued events that have held them for ``anonymous_ids_s``; how many."""
        fields = ", ".join(f"'$.{name}', NULL" for name in ANONYMOUS_ID_FIELDS)
        changed = int(
            conn.execute(
                f"UPDATE events SET payload = CAST(json_replace(CAST(payload AS TEXT), {fields}) AS BLOB),"
                " anon_until = NULL WHERE anon_until IS NOT NULL AND anon_until <= ?",
                (time.monotonic(),),
            ).rowcount
        )
        if changed:
            self._recount(conn)
        return changed

    def _expire(self, conn: sqlite3.Connection) -> int:
        """Drop events past ``expire_after_s`` and null anonymous ids past ``anonymous_ids_s``; how many nulled."""
        if self._idle_wake_s() is None or time.monotonic() < self._next_expiry:
            return 0
        self._next_expiry = time.monotonic() + (self._idle_wake_s() or EXPIRY_CHECK_S)
        self.expiry_checks += 1
        redacted = self._redact_anonymous(conn) if self.anonymous_ids_s else 0
        if not self.expire_after_s:
            return redacted
        cutoff = time.monotonic() - self.expire_after_s
        gone = conn.execute(
            "DELETE FROM events WHERE born_mono < ? AND retention != ? RETURNING retention, LENGTH(payload)",
            (cutoff, CLASS_CODE[Retention.PROTECTED]),
        ).fetchall()
        self._forget(int(size) for _, size in gone)
        for code, _ in gone:
            self.dropped[("expired", CODE_CLASS[int(code)].value)] += 1
        if gone:
            logger.warning("outbox: dropped %d undelivered events older than the retention limit", len(gone))
        return redacted


def _aged(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Salvaged rows (``salvage.EVENT_COLUMNS``) with their age in this run: from the wall clock where it is
    synchronised, else none; anonymous ids, whose deadline the corrupt file may not tell, are nulled at once."""
    now_mono, now_wall, synced = time.monotonic(), clock.now(), clock.synchronised()
    aged = []
    for row in rows:
        born = now_mono - max(0.0, now_wall - float(row[5])) if synced else now_mono
        aged.append((*row[:6], None if row[6] is None else now_mono, born))
    return aged
