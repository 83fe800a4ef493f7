"""A tamper-evident audit log: each entry's hash covers the previous entry's hash (a hash chain).

Subjects are recorded as an HMAC of the member id under the gallery key, so
the log proves what was done without keeping the id of an erased member.
Editing, inserting or deleting a row breaks ``verify``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
from dataclasses import dataclass

GENESIS = "0" * 64

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: float
    action: str
    subject: str
    detail: dict[str, object]
    prev: str
    hash: str


def subject_of(key: bytes, member_id: str) -> str:
    return hmac.new(key, b"member:" + member_id.encode(), hashlib.sha256).hexdigest()[:32]


def _digest(seq: int, at: float, action: str, subject: str, detail: str, prev: str) -> str:
    body = json.dumps([seq, repr(at), action, subject, detail, prev], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def append(db: sqlite3.Connection, action: str, subject: str, detail: dict[str, object]) -> AuditEntry:
    """Add one entry; the caller's transaction makes it atomic with the change it records."""
    row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
    at = time.time()
    text = json.dumps(detail, sort_keys=True, separators=(",", ":"))
    digest = _digest(seq, at, action, subject, text, prev)
    db.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?)", (seq, at, action, subject, text, prev, digest))
    return AuditEntry(seq, at, action, subject, detail, prev, digest)


def entries(db: sqlite3.Connection) -> list[AuditEntry]:
    rows = db.execute("SELECT seq, at, action, subject, detail, prev, hash FROM audit ORDER BY seq").fetchall()
    return [AuditEntry(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]


def verify(db: sqlite3.Connection) -> int:
    """Check the whole chain; the number of entries, or ValueError naming the first broken one."""
    prev, expected_seq = GENESIS, 1
    rows = db.execute("SELECT seq, at, action, subject, detail, prev, hash FROM audit ORDER BY seq").fetchall()
    for seq, at, action, subject, detail, row_prev, digest in rows:
        if seq != expected_seq:
            raise ValueError(f"audit chain broken: entry {expected_seq} is missing (found {seq})")
        if row_prev != prev or _digest(seq, at, action, subject, detail, row_prev) != digest:
            raise ValueError(f"audit chain broken at entry {seq} ({action})")
        prev, expected_seq = digest, seq + 1
    return len(rows)
