"""The outbox's clock: how old a queued event is, measured so that a wall-clock step changes nothing.

Retention (``privacy.retention.events_days``) and the nulling of anonymous ids (``anonymous_track_s``) compared
wall times, so a Raspberry Pi that booted at its last shutdown's time and was then stepped forward by NTP
dropped everything it had queued as "older than the retention", and a step back kept anonymous ids too long.
Now each row's ``born_mono`` and ``anon_until`` are ``time.monotonic`` values of the current run. At open they
are moved into the new run's frame: unchanged after a restart within one boot (same ``boot_id``: the same
monotonic clock, downtime included exactly); after a reboot, shifted by where the previous run left off
(``outbox_meta``, written with every commit) plus the downtime, which the wall clock gives only when it was
synchronised both before and after (else the downtime counts as zero: an event is kept longer, never lost).
Rows from before this column get their age from the wall clock where it is synchronised (else zero).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time

from agent import clock

logger = logging.getLogger(__name__)

AGE_COLUMN = "ALTER TABLE events ADD COLUMN born_mono REAL"
META_SCHEMA = "CREATE TABLE IF NOT EXISTS outbox_meta (name TEXT PRIMARY KEY, value)"


def _meta(conn: sqlite3.Connection) -> dict[str, object]:
    return dict(conn.execute("SELECT name, value FROM outbox_meta").fetchall())


def prepare(conn: sqlite3.Connection, anonymous_ids_s: float | None) -> None:
    """At open, before the committer starts: the column and meta table, and every row's age in this run's frame."""
    conn.execute(META_SCHEMA)
    added = "born_mono" not in {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    if added:
        conn.execute(AGE_COLUMN)
    now_mono, now_wall, synced = time.monotonic(), clock.now(), clock.synchronised()
    conn.execute("BEGIN IMMEDIATE")
    try:
        if added:
            _from_wall_clock(conn, now_mono, now_wall, synced, anonymous_ids_s)
        else:
            _rebase(conn, _meta(conn), now_mono, now_wall, synced)
        record(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _from_wall_clock(
    conn: sqlite3.Connection, now_mono: float, now_wall: float, synced: bool, anonymous_ids_s: float | None
) -> None:
    """Rows an older agent queued (wall times only): their age from the wall clock where it can be trusted."""
    if synced:
        conn.execute("UPDATE events SET born_mono = ? - MAX(0.0, ? - created_at)", (now_mono, now_wall))
    else:
        conn.execute("UPDATE events SET born_mono = ?", (now_mono,))
    limit = anonymous_ids_s if anonymous_ids_s else 0.0
    conn.execute(
        "UPDATE events SET anon_until = ? + MIN(?, MAX(0.0, anon_until - ?)) WHERE anon_until IS NOT NULL",
        (now_mono, limit, now_wall),
    )


def _rebase(conn: sqlite3.Connection, meta: dict[str, object], now_mono: float, now_wall: float, synced: bool) -> None:
    last_mono = meta.get("last_mono")
    if not isinstance(last_mono, int | float):
        return
    if meta.get("boot_id") is not None and meta.get("boot_id") == _boot_id():
        return  # the same boot: the same monotonic clock, nothing to move
    last_wall = meta.get("last_wall")
    both_synced = bool(meta.get("last_synced")) and synced and isinstance(last_wall, int | float)
    downtime = max(0.0, now_wall - float(last_wall)) if both_synced else 0.0  # type: ignore[arg-type]
    shift = now_mono - downtime - float(last_mono)
    conn.execute("UPDATE events SET born_mono = born_mono + ?", (shift,))
    conn.execute("UPDATE events SET anon_until = anon_until + ? WHERE anon_until IS NOT NULL", (shift,))
    logger.info(
        "outbox: ages carried over a reboot (%s)",
        f"{downtime:.0f} s down, by the synchronised clock" if both_synced else "downtime unknown: counted as 0",
    )


def record(conn: sqlite3.Connection) -> None:
    """Where this run is (inside the caller's transaction): what the next run rebases from."""
    conn.executemany(
        "INSERT OR REPLACE INTO outbox_meta VALUES (?, ?)",
        [
            ("last_mono", time.monotonic()),
            ("last_wall", clock.now()),
            ("last_synced", int(clock.synchronised())),
            ("boot_id", _boot_id()),
        ],
    )


@functools.cache
def _boot_id() -> str | None:
    return clock.boot_id()
