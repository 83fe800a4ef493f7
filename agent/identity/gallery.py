"""The member gallery: SQLite in the state directory, templates encrypted with AES-GCM, consent per member.

Only members with a consent record have templates. Each template is sealed
with AES-256-GCM under the gallery key with a random nonce, and the member id
and model name as associated data (a ciphertext moved to another member fails
to open). ``secure_delete`` overwrites erased rows on disk. The decrypted
templates live only in memory, as one matrix for :func:`models.face.match.match`.
A key-check value (``agent.identity.keycheck``) refuses a wrong key when the gallery is opened.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.identity import audit, keycheck
from agent.identity.keys import GalleryKeyError
from models.face.match import GalleryMatrix

logger = logging.getLogger(__name__)

SCHEMA = """
PRAGMA secure_delete = ON;
CREATE TABLE IF NOT EXISTS members (member_id TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS consent (
    member_id TEXT PRIMARY KEY REFERENCES members(member_id) ON DELETE CASCADE,
    reference TEXT NOT NULL, scope TEXT NOT NULL, granted_at REAL NOT NULL,
    expires_at REAL, guardian INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY, member_id TEXT NOT NULL REFERENCES members(member_id) ON DELETE CASCADE,
    model TEXT NOT NULL, nonce BLOB NOT NULL, sealed BLOB NOT NULL, quality REAL NOT NULL, created_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Consent:
    """What the member agreed to: a reference to the signed form, its scope, when, until when, guardian."""

    reference: str
    scope: str = "identification"
    granted_at: float = 0.0
    expires_at: float | None = None
    guardian: bool = False
    #: Where it applies: this terminal only, every terminal of the store, or every store of the chain.
    coverage: str = "terminal"

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class MemberInfo:
    member_id: str
    created_at: float
    templates: int
    consent: Consent


class GalleryError(Exception):
    """A gallery operation was refused (unknown member, no consent, wrong key); the message says why."""


class WrongGalleryKey(GalleryError, GalleryKeyError):
    """The key does not match the gallery's key-check value: a key problem (exit 78) as much as a gallery one."""


class Gallery:
    """One gallery file per terminal; thread-safe; the matrix is rebuilt only after a change."""

    def __init__(self, path: Path, key: bytes, model: str) -> None:
        if len(key) != 32:
            raise GalleryError("the gallery key must be 32 bytes")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self.model = model
        self._key = key
        self._aead = AESGCM(key)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.executescript(SCHEMA)
        if "coverage" not in {row[1] for row in self._db.execute("PRAGMA table_info(consent)")}:
            self._db.execute("ALTER TABLE consent ADD COLUMN coverage TEXT NOT NULL DEFAULT 'terminal'")
        os.chmod(path, 0o600)
        self._matrix: GalleryMatrix | None = None
        try:
            if keycheck.ensure(self._db, path, key, self._opens_a_template):
                logger.info("gallery %s: key-check value written", path)
        except keycheck.WrongKey as exc:
            self._db.close()
            raise WrongGalleryKey(str(exc)) from None
        self._audit = audit.AuditChain(self._db, key)  # after the key check: a chain is keyed with this key

    def _opens_a_template(self) -> bool | None:
        """Whether the key decrypts the first stored template (None: there is none), for the key-check migration."""
        row = self._db.execute("SELECT member_id, model, nonce, sealed FROM templates ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        try:
            self._aead.decrypt(row[2], row[3], f"{row[0]}\x00{row[1]}".encode())
        except InvalidTag:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def subject(self, member_id: str) -> str:
        return audit.subject_of(self._key, member_id)

    def _seal(self, member_id: str, vector: npt.NDArray[np.float32]) -> tuple[bytes, bytes]:
        nonce = os.urandom(12)
        aad = f"{member_id}\x00{self.model}".encode()
        return nonce, self._aead.encrypt(nonce, np.asarray(vector, "<f4").tobytes(), aad)

    def enroll(
        self, member_id: str, templates: list[npt.NDArray[np.float32]], qualities: list[float], consent: Consent
    ) -> int:
        """Store consent and templates for ``member_id`` (added to any already enrolled); audited."""
        if not templates:
            raise GalleryError(f"member {member_id!r}: no usable template to enrol")
        if not consent.reference:
            raise GalleryError(f"member {member_id!r}: a consent reference is required")
        now = time.time()
        if consent.expired(now):
            raise GalleryError(f"member {member_id!r}: consent already expired")
        granted = consent.granted_at or now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR IGNORE INTO members VALUES (?, ?)", (member_id, now))
                self._db.execute(
                    "INSERT OR REPLACE INTO consent (member_id, reference, scope, granted_at, expires_at, guardian, "
                    "coverage) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        member_id,
                        consent.reference,
                        consent.scope,
                        granted,
                        consent.expires_at,
                        int(consent.guardian),
                        consent.coverage,
                    ),
                )
                for vector, quality in zip(templates, qualities, strict=True):
                    nonce, sealed = self._seal(member_id, vector)
                    self._db.execute(
                        "INSERT INTO templates (member_id, model, nonce, sealed, quality, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (member_id, self.model, nonce, sealed, float(quality), now),
                    )
                self._audit.append(
                    "enroll",
                    self.subject(member_id),
                    {"templates": len(templates), "consent_ref": consent.reference, "scope": consent.scope},
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._matrix = None
        return len(templates)

    def erase(self, member_id: str, reason: str = "request") -> bool:
        """Delete the member's templates, consent and record, and redact their audit entries (when, where, who);
        the erasure's own entry names no one. False when the member was not enrolled."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                n = self._db.execute("SELECT COUNT(*) FROM templates WHERE member_id = ?", (member_id,)).fetchone()[0]
                # Templates and consent go with the member row (ON DELETE CASCADE, foreign_keys on).
                known = self._db.execute("DELETE FROM members WHERE member_id = ?", (member_id,)).rowcount > 0
                redacted = self._audit.redact(self.subject(member_id))
                if known or redacted:
                    self._audit.append(audit.ERASE, None, {"templates": n, "reason": reason, "redacted": redacted})
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if known or redacted:
                self._db.execute("VACUUM")  # with secure_delete: no freed page keeps the member
                self._matrix = None
        return known

    def expired_members(self, now: float | None = None) -> list[str]:
        """Members whose consent has expired (``enrollment.enforce_retention`` erases them everywhere)."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT member_id FROM consent WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            ).fetchall()
        return [r[0] for r in rows]

    def record(self, action: str, member_id: str, detail: dict[str, object]) -> None:
        """Audit a match or an export."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._audit.append(action, self.subject(member_id), detail)
            self._db.execute("COMMIT")

    def members(self) -> list[MemberInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT m.member_id, m.created_at, c.reference, c.scope, c.granted_at, c.expires_at, c.guardian, "
                "(SELECT COUNT(*) FROM templates t WHERE t.member_id = m.member_id), c.coverage "
                "FROM members m JOIN consent c USING (member_id) ORDER BY m.member_id"
            ).fetchall()
        return [MemberInfo(r[0], r[1], r[7], Consent(r[2], r[3], r[4], r[5], bool(r[6]), r[8])) for r in rows]

    def replace_member(
        self, member_id: str, templates: list[npt.NDArray[np.float32]], consent: Consent, origin: str
    ) -> int:
        """A member's state as the store shares it (imported from the hub): exactly these templates and this consent,
        whatever this terminal held before; audited. Returns the number of templates."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR IGNORE INTO members VALUES (?, ?)", (member_id, now))
                self._db.execute("DELETE FROM templates WHERE member_id = ?", (member_id,))
                self._db.execute(
                    "INSERT OR REPLACE INTO consent (member_id, reference, scope, granted_at, expires_at, guardian, "
                    "coverage) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        member_id,
                        consent.reference,
                        consent.scope,
                        consent.granted_at or now,
                        consent.expires_at,
                        int(consent.guardian),
                        consent.coverage,
                    ),
                )
                for vector in templates:
                    nonce, sealed = self._seal(member_id, vector)
                    self._db.execute(
                        "INSERT INTO templates (member_id, model, nonce, sealed, quality, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (member_id, self.model, nonce, sealed, 1.0, now),
                    )
                self._audit.append(
                    "sync",
                    self.subject(member_id),
                    {"templates": len(templates), "consent_ref": consent.reference, "from": origin},
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._matrix = None
        return len(templates)

    def member(self, member_id: str) -> MemberInfo:
        for info in self.members():
            if info.member_id == member_id:
                return info
        raise GalleryError(f"member {member_id!r} is not enrolled")

    def matrix(self) -> GalleryMatrix:
        """All templates of this model, decrypted, as one matrix (cached until the next change)."""
        with self._lock:
            if self._matrix is not None:
                return self._matrix
            rows = self._db.execute(
                "SELECT member_id, nonce, sealed FROM templates WHERE model = ? ORDER BY member_id, id", (self.model,)
            ).fetchall()
            members: list[str] = []
            index: dict[str, int] = {}
            vectors, owners = [], []
            for member_id, nonce, sealed in rows:
                aad = f"{member_id}\x00{self.model}".encode()
                try:
                    plain = self._aead.decrypt(nonce, sealed, aad)
                except Exception as exc:
                    raise GalleryError(
                        f"template of a member in {self.path} does not open: wrong gallery key?"
                    ) from exc
                if member_id not in index:
                    index[member_id] = len(members)
                    members.append(member_id)
                vectors.append(np.frombuffer(plain, "<f4"))
                owners.append(index[member_id])
            if vectors:
                self._matrix = GalleryMatrix(
                    np.stack(vectors).astype(np.float32), np.array(owners, np.int32), tuple(members)
                )
            else:
                self._matrix = GalleryMatrix.empty(128)
            return self._matrix

    def verify_audit(self) -> int:
        """The number of entries of a sound chain; ``audit.AuditBroken`` (a ValueError) otherwise."""
        return self.audit_head().seq

    def audit_head(self, verify: bool = True) -> audit.Head:
        """Verify the chain and return its head (``audit.AuditBroken`` when it does not verify); with
        ``verify=False`` the newest entry as it stands."""
        with self._lock:
            return self._audit.verify() if verify else self._audit.head()

    def audit_entries(self) -> list[audit.AuditEntry]:
        with self._lock:
            return self._audit.entries()
