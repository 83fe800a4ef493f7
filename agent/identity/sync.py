"""Members shared by the terminals of a store: enrol once, recognised everywhere; erase once, erased everywhere.

A member whose consent covers the store (``coverage: store``, or ``chain``) and whose terminal may let templates
leave (``privacy.egress.biometric_templates``) is announced with a ``member.enrolled`` event carrying a *bundle*:
the consent record and the templates encrypted (AES-256-GCM) under the store key, which only the store's
terminals hold (the hub relays bundles it cannot open). An erasure is announced with ``member.erased``, which
names the member only by a reference (a hash). The hub's fleet coordinator (``agent.hub.fleet``) merges what
every terminal announced into one versioned state per member and publishes it, signed, retained, on
``<prefix>/<store>/_members/<ref>``; every terminal of the store imports it (the newest version wins), so a
terminal that was offline catches up from the retained states when it reconnects, and two enrolments of one
member on two terminals converge to the union of their templates.

What waits to be announced lives in a small journal (SQLite beside the gallery), so enrolments made with the CLI
while the daemon is down are announced when it starts; an erasure deletes the member's pending entries.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.events import EventBody, Retention
from drivers.secrets import SecretError, read_secret

Coverage = Literal["terminal", "store", "chain"]
COVERAGES: tuple[Coverage, ...] = ("terminal", "store", "chain")
JOURNAL_FILE = "sync.sqlite3"


class SyncError(ValueError):
    """A bundle or key is unusable; the message says which and why (never what a template holds)."""


def member_ref(store_id: str, member_id: str) -> str:
    """How a member is named where their id should not travel (topics, erasure notices): 32 hex digits."""
    return hashlib.sha256(f"{store_id}\0{member_id}".encode()).hexdigest()[:32]


def load_store_key(env: str | None, credential: str | None, what: str = "store key") -> bytes:
    """A 32-byte key given as 64 hex digits (or base64) in an env variable or a systemd credential."""
    try:
        text = read_secret(env, credential)
    except SecretError as exc:
        raise SyncError(f"{what}: {exc}") from None
    if text is None:
        raise SyncError(f"{what}: name an environment variable or a systemd credential")
    text = text.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except ValueError:
        raise SyncError(f"{what}: not 64 hex digits or base64") from None
    if len(key) != 32:
        raise SyncError(f"{what}: must be 32 bytes (got {len(key)})")
    return key


@dataclass(frozen=True)
class SharedConsent:
    """The consent record as it travels with a bundle."""

    reference: str
    scope: str
    coverage: Coverage
    granted_at: float
    expires_at: float | None
    guardian: bool


def seal_templates(
    key: bytes, store_id: str, member_id: str, model: str, vectors: list[npt.NDArray[np.float32]], origin: str
) -> list[dict[str, str]]:
    """Each template encrypted under the store key, bound to the store, member and model (moved ones fail)."""
    aead = AESGCM(key)
    aad = f"{store_id}\0{member_id}\0{model}".encode()
    out = []
    for vector in vectors:
        nonce = os.urandom(12)
        sealed = aead.encrypt(nonce, np.asarray(vector, "<f4").tobytes(), aad)
        out.append(
            {"origin": origin, "nonce": base64.b64encode(nonce).decode(), "ct": base64.b64encode(sealed).decode()}
        )
    return out


def open_templates(
    key: bytes, store_id: str, member_id: str, model: str, sealed: list[dict[str, str]]
) -> list[npt.NDArray[np.float32]]:
    aead = AESGCM(key)
    aad = f"{store_id}\0{member_id}\0{model}".encode()
    vectors = []
    for i, entry in enumerate(sealed):
        try:
            plain = aead.decrypt(base64.b64decode(entry["nonce"]), base64.b64decode(entry["ct"]), aad)
        except Exception:
            raise SyncError(f"template {i} of a shared member does not open: another store key, or altered") from None
        vectors.append(np.frombuffer(plain, "<f4").copy())
    return vectors


@dataclass(frozen=True, kw_only=True)
class MemberEnrolled(EventBody):
    """A member whose consent covers the store was enrolled here: their consent and encrypted templates, for the
    hub to relay to the store's other terminals (only with ``privacy.egress.biometric_templates``)."""

    TYPE: ClassVar[str] = "member.enrolled"
    RETENTION: ClassVar[Retention] = Retention.PROTECTED
    member_id: str
    member_ref: str
    consent: dict[str, Any]
    model: str
    templates: list[dict[str, str]]


@dataclass(frozen=True, kw_only=True)
class MemberErased(EventBody):
    """A member was erased here: the hub erases them on every terminal of the store and collects the proof.
    The member is named only by ``member_ref``."""

    TYPE: ClassVar[str] = "member.erased"
    RETENTION: ClassVar[Retention] = Retention.PROTECTED
    member_ref: str
    reason: str


JOURNAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS outgoing (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, member_ref TEXT NOT NULL, member_id TEXT, body TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS imported (member_ref TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cards (card_hash TEXT PRIMARY KEY, member_ref TEXT NOT NULL, member_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS manifest (store_version INTEGER NOT NULL, members TEXT NOT NULL);
"""


class SyncJournal:
    """What waits to be announced, and the version of every member state imported (one file, thread-safe)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA secure_delete = ON")
        self._db.executescript(JOURNAL_SCHEMA)
        os.chmod(path, 0o600)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def enrolled(self, member_id: str, ref: str, body: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO outgoing (kind, member_ref, member_id, body, created_at) VALUES ('enrolled', ?, ?, ?, ?)",
                (ref, member_id, json.dumps(body), time.time()),
            )

    def erased(self, ref: str, reason: str) -> None:
        """An erasure to announce; the member's own pending announcements and shared cards go."""
        with self._lock:
            self._db.execute("DELETE FROM outgoing WHERE member_ref = ?", (ref,))
            self._db.execute("DELETE FROM cards WHERE member_ref = ?", (ref,))
            self._db.execute(
                "INSERT INTO outgoing (kind, member_ref, member_id, body, created_at) VALUES ('erased', ?, NULL, ?, ?)",
                (ref, json.dumps({"reason": reason}), time.time()),
            )

    def forget(self, ref: str) -> int:
        """Erasure from elsewhere: drop what was pending for the member and their cards (nothing to announce)."""
        with self._lock:
            self._db.execute("DELETE FROM cards WHERE member_ref = ?", (ref,))
            return self._db.execute("DELETE FROM outgoing WHERE member_ref = ?", (ref,)).rowcount

    def pending(self, limit: int = 50) -> list[tuple[int, str, str, str | None, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, member_ref, member_id, body FROM outgoing ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [(int(i), k, r, m, json.loads(b)) for i, k, r, m, b in rows]

    def sent(self, ids: list[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM outgoing WHERE id = ?", [(i,) for i in ids])

    def imported_version(self, ref: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT version FROM imported WHERE member_ref = ?", (ref,)).fetchone()
        return int(row[0]) if row else 0

    def mark_imported(self, ref: str, version: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO imported VALUES (?, ?)", (ref, version))

    def set_cards(self, ref: str, member_id: str | None, hashes: list[str]) -> None:
        """The member's cards as the store shares them (none for an erased member)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM cards WHERE member_ref = ?", (ref,))
            if member_id is not None:
                self._db.executemany(
                    "INSERT OR REPLACE INTO cards VALUES (?, ?, ?)", [(h, ref, member_id) for h in hashes]
                )
            self._db.execute("COMMIT")

    def member_of(self, ref: str) -> str | None:
        """The member id behind a reference, where this terminal holds their shared cards."""
        with self._lock:
            row = self._db.execute("SELECT member_id FROM cards WHERE member_ref = ? LIMIT 1", (ref,)).fetchone()
        return str(row[0]) if row else None

    def card_member(self, digest: str) -> str | None:
        """The member a store-shared card belongs to (the card reader's lookup after the registry file)."""
        with self._lock:
            row = self._db.execute("SELECT member_id FROM cards WHERE card_hash = ?", (digest,)).fetchone()
        return str(row[0]) if row else None

    def set_manifest(self, store_version: int, members: dict[str, int]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM manifest")
            self._db.execute("INSERT INTO manifest VALUES (?, ?)", (store_version, json.dumps(members)))
            self._db.execute("COMMIT")

    def progress(self) -> dict[str, int]:
        """Where this terminal stands against the store's manifest: for health and the fleet view."""
        with self._lock:
            row = self._db.execute("SELECT store_version, members FROM manifest").fetchone()
            imported = dict(self._db.execute("SELECT member_ref, version FROM imported").fetchall())
            pending = self._db.execute("SELECT COUNT(*) FROM outgoing").fetchone()[0]
        store_version, members = (int(row[0]), json.loads(row[1])) if row else (0, {})
        behind = sum(1 for ref, v in members.items() if int(imported.get(ref, 0)) < int(v))
        return {"store_version": store_version, "behind": behind, "pending_announcements": int(pending)}


class SyncRecorder:
    """Writes what this terminal enrols or erases (for members whose consent covers more than it) to the journal,
    ready for the daemon to announce. Set up by the daemon and the CLI where ``identity.sync`` is on."""

    def __init__(self, journal: SyncJournal, store_id: str, terminal_id: str, key: bytes, templates_may_leave: bool):
        self.journal = journal
        self.store_id = store_id
        self.terminal_id = terminal_id
        self._key = key
        self.templates_may_leave = templates_may_leave

    def enrolled(
        self, member_id: str, consent: SharedConsent, model: str, vectors: list[npt.NDArray[np.float32]]
    ) -> bool:
        """Record an enrolment to share; False (nothing recorded) when its consent or egress keeps it here."""
        if consent.coverage == "terminal" or not self.templates_may_leave:
            return False
        ref = member_ref(self.store_id, member_id)
        body = {
            "member_id": member_id,
            "member_ref": ref,
            "consent": consent.__dict__,
            "model": model,
            "templates": seal_templates(self._key, self.store_id, member_id, model, vectors, self.terminal_id),
        }
        self.journal.enrolled(member_id, ref, body)
        return True

    def erased(self, member_id: str, reason: str) -> None:
        """Record an erasure to announce (only the member's reference travels)."""
        self.journal.erased(member_ref(self.store_id, member_id), reason)


_recorder: SyncRecorder | None = None
_recorder_lock = threading.Lock()


def set_recorder(recorder: SyncRecorder | None) -> None:
    """The process's recorder (the daemon's or the CLI's), or None where sync is off."""
    global _recorder
    with _recorder_lock:
        _recorder = recorder


def recorder() -> SyncRecorder | None:
    with _recorder_lock:
        return _recorder


def known_member(ref: str) -> str | None:
    """The member id behind ``ref`` from what the store shared with this terminal (their cards), if anything."""
    current = recorder()
    return current.journal.member_of(ref) if current is not None else None
