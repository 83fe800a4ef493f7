"""The audit log: a keyed hash chain whose entries can be redacted at erasure without breaking it.

Each entry says what was done (``action``), when (``at``), to whom (``subject``: an HMAC of the member id under
the gallery key, so the log never holds the id itself) and details. Its MAC covers the sequence number, the
action, the previous entry's MAC and a salted SHA-256 *commitment* to ``at``, ``subject`` and ``detail``, not
those fields themselves. Erasing a member redacts their entries: the fields and the salt go, the commitment
stays, so the chain still verifies and nobody can guess the redacted fields back from it (the salt is gone). The
erasure's own entry names no one; it lists the redacted sequence numbers, and an entry redacted without such a
record breaks the chain.

The MAC is HMAC-SHA256 under a key derived from the gallery key: whoever can write the database but lacks the key
cannot change, insert or delete entries and compute a new chain. Deleting the newest entries leaves a shorter,
valid chain: that is caught by the head (sequence and MAC) the daemon publishes in ``health``
(``agent.runtime.upkeep``), which a hub remembers. A gallery written before this (the unkeyed chain in table
``audit``) is migrated when it is opened: its chain is verified, re-chained under the key, and the migration is
recorded with the verdict.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
TABLE = "audit_log"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    seq INTEGER PRIMARY KEY,
    action TEXT NOT NULL,
    at REAL,
    subject TEXT,
    detail TEXT,
    salt BLOB,
    commitment TEXT NOT NULL,
    prev TEXT NOT NULL,
    mac TEXT NOT NULL
)
"""
#: The table of the unkeyed chain galleries had before; migrated at open.
LEGACY_TABLE = "audit"
ERASE = "erase"


class AuditBroken(ValueError):
    """The chain does not verify; the message names the first entry that fails."""


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: float | None
    action: str
    subject: str | None
    detail: dict[str, object]
    prev: str
    mac: str

    @property
    def redacted(self) -> bool:
        return self.subject is None and self.at is None


@dataclass(frozen=True)
class Head:
    """The newest entry: what a hub remembers to notice a chain that went back (entries deleted)."""

    seq: int
    mac: str


def subject_of(key: bytes, member_id: str) -> str:
    return hmac.new(key, b"member:" + member_id.encode(), hashlib.sha256).hexdigest()[:32]


def chain_key(gallery_key: bytes) -> bytes:
    """The chain's MAC key, derived from (never equal to) the gallery key."""
    return hmac.new(gallery_key, b"store-agent audit chain v2", hashlib.sha256).digest()


def _commitment(salt: bytes, at: float, subject: str | None, detail: str) -> str:
    body = json.dumps([repr(at), subject, detail], separators=(",", ":"))
    return hashlib.sha256(salt + body.encode()).hexdigest()


def _mac(key: bytes, seq: int, action: str, commitment: str, prev: str) -> str:
    body = json.dumps([seq, action, commitment, prev], separators=(",", ":"))
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


class AuditChain:
    """The chain in a gallery database; every method runs inside the caller's lock (and transaction, for
    ``append`` and ``redact``, so an entry is atomic with the change it records)."""

    def __init__(self, db: sqlite3.Connection, gallery_key: bytes) -> None:
        self._db = db
        self._key = chain_key(gallery_key)
        db.execute(SCHEMA)
        self._migrate()

    def head(self) -> Head:
        row = self._db.execute(f"SELECT seq, mac FROM {TABLE} ORDER BY seq DESC LIMIT 1").fetchone()
        return Head(int(row[0]), str(row[1])) if row else Head(0, GENESIS)

    def append(self, action: str, subject: str | None, detail: dict[str, object], at: float | None = None) -> Head:
        head = self.head()
        seq, at = head.seq + 1, time.time() if at is None else at
        text = json.dumps(detail, sort_keys=True, separators=(",", ":"))
        salt = os.urandom(16)
        commitment = _commitment(salt, at, subject, text)
        mac = _mac(self._key, seq, action, commitment, head.mac)
        self._db.execute(
            f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, action, at, subject, text, salt, commitment, head.mac, mac),
        )
        return Head(seq, mac)

    def redact(self, subject: str) -> list[int]:
        """Drop the fields and salt of every entry about ``subject``; the sequence numbers redacted."""
        rows = self._db.execute(f"SELECT seq FROM {TABLE} WHERE subject = ? ORDER BY seq", (subject,)).fetchall()
        seqs = [int(r[0]) for r in rows]
        self._db.executemany(
            f"UPDATE {TABLE} SET at = NULL, subject = NULL, detail = NULL, salt = NULL WHERE seq = ?",
            [(s,) for s in seqs],
        )
        return seqs

    def entries(self) -> list[AuditEntry]:
        rows = self._db.execute(f"SELECT seq, at, action, subject, detail, prev, mac FROM {TABLE} ORDER BY seq")
        return [
            AuditEntry(int(s), a, act, sub, json.loads(d) if d is not None else {}, p, m)
            for s, a, act, sub, d, p, m in rows.fetchall()
        ]

    def verify(self) -> Head:
        """Check the whole chain: the head, or :class:`AuditBroken` naming the first entry that fails."""
        prev, expected = GENESIS, 1
        redacted: set[int] = set()
        covered: set[int] = set()
        rows = self._db.execute(
            f"SELECT seq, action, at, subject, detail, salt, commitment, prev, mac FROM {TABLE} ORDER BY seq"
        ).fetchall()
        for seq, action, at, subject, detail, salt, commitment, row_prev, mac in rows:
            if seq != expected:
                raise AuditBroken(f"audit chain broken: entry {expected} is missing (found {seq})")
            if salt is None:
                if at is not None or subject is not None or detail is not None:
                    raise AuditBroken(f"audit chain broken at entry {seq} ({action}): fields without their salt")
                redacted.add(seq)
            elif _commitment(bytes(salt), at, subject, detail) != commitment:
                raise AuditBroken(f"audit chain broken at entry {seq} ({action}): its fields were changed")
            if row_prev != prev or not hmac.compare_digest(_mac(self._key, seq, action, commitment, row_prev), mac):
                raise AuditBroken(f"audit chain broken at entry {seq} ({action})")
            if action == ERASE and detail is not None:
                listed = json.loads(detail).get("redacted", [])
                covered.update(int(s) for s in listed if isinstance(s, int))
            prev, expected = mac, seq + 1
        if redacted - covered:
            first = min(redacted - covered)
            raise AuditBroken(f"audit chain broken: entry {first} was redacted without an erasure record")
        return Head(expected - 1, prev)

    def _migrate(self) -> None:
        """Move an unkeyed chain (table ``audit``) into this one, recording whether it verified."""
        db = self._db
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (LEGACY_TABLE,)).fetchone():
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(
                    f"SELECT seq, at, action, subject, detail, prev, hash FROM {LEGACY_TABLE} ORDER BY seq"
                ).fetchall()
                verdict = _legacy_verdict(rows)
                if db.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0] == 0:
                    for _seq, at, action, subject, detail, _prev, _hash in rows:
                        self.append(action, subject, json.loads(detail), at)
                    self.append("audit-migrated", None, {"entries": len(rows), "unkeyed_chain": verdict})
                db.execute(f"DROP TABLE {LEGACY_TABLE}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            log = logger.info if verdict == "ok" else logger.error
            log("audit log: %d entries moved to the keyed chain (the unkeyed chain: %s)", len(rows), verdict)


def _legacy_digest(seq: int, at: float, action: str, subject: str, detail: str, prev: str) -> str:
    body = json.dumps([seq, repr(at), action, subject, detail, prev], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _legacy_verdict(rows: list[tuple[int, float, str, str, str, str, str]]) -> str:
    """ "ok", or what is wrong with the unkeyed chain of an older gallery."""
    prev, expected = GENESIS, 1
    for seq, at, action, subject, detail, row_prev, digest in rows:
        if seq != expected:
            return f"entry {expected} is missing (found {seq})"
        if row_prev != prev or _legacy_digest(seq, at, action, subject, detail, row_prev) != digest:
            return f"broken at entry {seq} ({action})"
        prev, expected = digest, seq + 1
    return "ok"
