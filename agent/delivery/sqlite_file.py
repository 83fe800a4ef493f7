"""The outbox's SQLite file: opening it durably, checking it at start, and keeping a corrupt one for inspection."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def open_wal(path: Path) -> sqlite3.Connection:
    """WAL with ``synchronous=FULL``: a committed transaction survives power loss.

    ``secure_delete=FAST`` zeroes a deleted row's bytes on its page (no extra I/O: the page is written anyway), so
    a delivered or erased event does not linger in the file, and salvaging a corrupt file page by page
    (``agent.delivery.salvage``) cannot bring it back."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA secure_delete=FAST")
    return conn


def check_integrity(path: Path) -> str | None:
    """``None`` when the file is a sound SQLite database (or absent), else what is wrong."""
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            result = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    problems = [str(r[0]) for r in result if r[0] != "ok"]
    return "; ".join(problems[:5]) or None


def move_aside(path: Path, reason: str) -> Path:
    """Keep a corrupt outbox (and its WAL) for inspection under a new name; never delete it."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            part.rename(Path(str(target) + suffix))
    logger.error("outbox %s is corrupt (%s); moved aside to %s, salvaging what it holds", path, reason, target)
    return target
