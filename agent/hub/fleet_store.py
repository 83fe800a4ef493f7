"""The fleet coordinator's memory: one versioned state per member per store, and the proof of every erasure.

Terminals announce (``member.enrolled`` with sealed templates, ``member.erased`` with a reference only); this
store merges what they announce into the state every terminal of the store imports:

- **Enrolments converge.** Each terminal's latest bundle for a member replaces that terminal's earlier one; the
  member's state is the union of every terminal's bundle, per embedder, with the newest consent. Two enrolments
  of one member at two terminals end as one state holding both.
- **Versions.** Every change takes the store's next version number; a terminal imports a state only when its
  version is newer than what it has, and the store's manifest lists each member's current version, so a
  terminal that was away knows when it is in step.
- **Erasure wins over older news.** An erasure leaves a tombstone (reference only) and removes the bundles and
  cards; an enrolment captured before the erasure (a terminal that was offline announcing late) is ignored, a
  later one (the member consented again) revives the member.
- **Proof.** An erasure expects a confirmation from every terminal of the store registered at the hub; the
  announcing terminal's own verified event is its confirmation, the others answer a signed ``erase-member``.

Nothing here can open a template: bundles stay encrypted under the store key, which the hub does not hold.
SQLite in WAL mode, so the coordinator and the ``hub fleet`` commands (erase, cards, status) share the file;
only the coordinator publishes (it publishes what the others mark as changed).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Templates in one member state, newest terminals first (each ~2.7 kB sealed and encoded).
MAX_STATE_TEMPLATES = 96
FLEET_FILE = "fleet.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS stores (store_id TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    store_id TEXT NOT NULL, member_ref TEXT NOT NULL, member_id TEXT, version INTEGER NOT NULL,
    erased INTEGER NOT NULL, consent TEXT, changed_at REAL NOT NULL, published INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (store_id, member_ref)
);
CREATE TABLE IF NOT EXISTS bundles (
    store_id TEXT NOT NULL, member_ref TEXT NOT NULL, origin TEXT NOT NULL, model TEXT NOT NULL,
    templates TEXT NOT NULL, captured_at REAL NOT NULL, PRIMARY KEY (store_id, member_ref, origin, model)
);
CREATE TABLE IF NOT EXISTS cards (
    store_id TEXT NOT NULL, card_hash TEXT NOT NULL, member_ref TEXT NOT NULL, PRIMARY KEY (store_id, card_hash)
);
CREATE TABLE IF NOT EXISTS erasures (
    store_id TEXT NOT NULL, member_ref TEXT NOT NULL, requested_at REAL NOT NULL, requested_by TEXT NOT NULL,
    reason TEXT NOT NULL, PRIMARY KEY (store_id, member_ref)
);
CREATE TABLE IF NOT EXISTS proofs (
    store_id TEXT NOT NULL, member_ref TEXT NOT NULL, terminal_id TEXT NOT NULL, confirmed_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0, last_try REAL NOT NULL DEFAULT 0, detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (store_id, member_ref, terminal_id)
);
CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, at REAL NOT NULL);
"""


class FleetError(ValueError):
    """An announcement or request the fleet cannot take; the message says which field and why."""


@dataclass(frozen=True)
class ErasureProgress:
    """Where one erasure stands: which terminals confirmed, which have not yet."""

    store_id: str
    member_ref: str
    requested_at: float
    requested_by: str
    confirmed: list[str]
    missing: list[str]

    @property
    def done(self) -> bool:
        return not self.missing

    def line(self) -> str:
        total = len(self.confirmed) + len(self.missing)
        text = f"erased on {len(self.confirmed)} of {total} terminals"
        return text + (f"; waiting for {', '.join(self.missing)}" if self.missing else "")


@dataclass(frozen=True)
class DueCommand:
    """An erasure a terminal has not confirmed, due for (another) signed ``erase-member``."""

    store_id: str
    member_ref: str
    terminal_id: str
    attempts: int


class FleetStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA secure_delete = ON")
        self._db.executescript(SCHEMA)
        path.chmod(0o600)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @staticmethod
    def _bump(db: sqlite3.Connection, store_id: str) -> int:
        db.execute("INSERT OR IGNORE INTO stores VALUES (?, 0)", (store_id,))
        db.execute("UPDATE stores SET version = version + 1 WHERE store_id = ?", (store_id,))
        return int(db.execute("SELECT version FROM stores WHERE store_id = ?", (store_id,)).fetchone()[0])

    def first_sight(self, event_id: str) -> bool:
        """False for an event already taken (a redelivery); the hub's consumers may see one twice."""
        with self._write() as db:
            return db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (event_id, time.time())).rowcount == 1

    # --- announcements ------------------------------------------------------------------------------

    def enrolled(
        self,
        store_id: str,
        terminal_id: str,
        member_id: str,
        ref: str,
        consent: dict[str, Any],
        model: str,
        templates: list[dict[str, str]],
        captured_at: float,
    ) -> int | None:
        """A terminal's bundle for a member: merged, and the member's new version (None: older than an erasure)."""
        if any(t.get("origin") != terminal_id for t in templates):
            raise FleetError(f"member.enrolled from {terminal_id}: templates claim another terminal as origin")
        if consent.get("coverage") not in ("store", "chain"):
            raise FleetError(f"member.enrolled from {terminal_id}: consent coverage {consent.get('coverage')!r}")
        with self._write() as db:
            erased = db.execute(
                "SELECT requested_at FROM erasures WHERE store_id = ? AND member_ref = ?", (store_id, ref)
            ).fetchone()
            if erased is not None and captured_at <= float(erased[0]):
                return None
            db.execute(
                "INSERT OR REPLACE INTO bundles VALUES (?, ?, ?, ?, ?, ?)",
                (store_id, ref, terminal_id, model, json.dumps(templates), captured_at),
            )
            row = db.execute(
                "SELECT consent, erased FROM members WHERE store_id = ? AND member_ref = ?", (store_id, ref)
            ).fetchone()
            newest = consent
            if row is not None and row[0] and not row[1]:
                held = json.loads(row[0])
                newest = consent if float(consent["granted_at"]) >= float(held["granted_at"]) else held
            version = self._bump(db, store_id)
            db.execute(
                "INSERT OR REPLACE INTO members VALUES (?, ?, ?, ?, 0, ?, ?, 0)",
                (store_id, ref, member_id, version, json.dumps(newest), time.time()),
            )
        return version

    def erased(self, store_id: str, ref: str, by: str, reason: str, at: float, terminals: list[str]) -> int:
        """An erasure (announced by terminal ``by``, or ``hub``): tombstone, bundles and cards gone, and a proof
        expected from each of ``terminals``; the announcing terminal has confirmed by announcing. Another
        announcement of a member already erased (each terminal's own consent expiry) only adds its proof."""
        with self._write() as db:
            row = db.execute(
                "SELECT version, erased FROM members WHERE store_id = ? AND member_ref = ?", (store_id, ref)
            ).fetchone()
            if row is not None and row[1]:
                if by in terminals:
                    self._confirm(db, store_id, ref, by, "announced the erasure")
                return int(row[0])
            db.execute("DELETE FROM bundles WHERE store_id = ? AND member_ref = ?", (store_id, ref))
            db.execute("DELETE FROM cards WHERE store_id = ? AND member_ref = ?", (store_id, ref))
            db.execute("DELETE FROM proofs WHERE store_id = ? AND member_ref = ?", (store_id, ref))
            db.execute("INSERT OR REPLACE INTO erasures VALUES (?, ?, ?, ?, ?)", (store_id, ref, at, by, reason))
            db.executemany(
                "INSERT INTO proofs (store_id, member_ref, terminal_id) VALUES (?, ?, ?)",
                [(store_id, ref, t) for t in terminals],
            )
            if by in terminals:
                self._confirm(db, store_id, ref, by, "announced the erasure")
            version = self._bump(db, store_id)
            db.execute(
                "INSERT OR REPLACE INTO members VALUES (?, ?, NULL, ?, 1, NULL, ?, 0)",
                (store_id, ref, version, time.time()),
            )
        return version

    def set_cards(self, store_id: str, ref: str, member_id: str, add: list[str], remove: list[str]) -> int:
        """Card registry changes for a member (keyed hashes, as the terminals compute them). A member the store
        does not know yet becomes one known by card only; an erased member is refused (enrol them again)."""
        with self._write() as db:
            row = db.execute(
                "SELECT erased FROM members WHERE store_id = ? AND member_ref = ?", (store_id, ref)
            ).fetchone()
            if row is not None and row[0]:
                raise FleetError(f"member {member_id} of store {store_id} was erased: enrol them again first")
            for digest in add:
                owner = db.execute(
                    "SELECT member_ref FROM cards WHERE store_id = ? AND card_hash = ?", (store_id, digest)
                ).fetchone()
                if owner is not None and owner[0] != ref:
                    raise FleetError(f"card {digest[:12]}… already belongs to another member of store {store_id}")
                db.execute("INSERT OR REPLACE INTO cards VALUES (?, ?, ?)", (store_id, digest, ref))
            for digest in remove:
                db.execute(
                    "DELETE FROM cards WHERE store_id = ? AND card_hash = ? AND member_ref = ?", (store_id, digest, ref)
                )
            version = self._bump(db, store_id)
            if row is None:
                db.execute(
                    "INSERT INTO members VALUES (?, ?, ?, ?, 0, NULL, ?, 0)",
                    (store_id, ref, member_id, version, time.time()),
                )
            else:
                db.execute(
                    "UPDATE members SET version = ?, changed_at = ?, published = 0 "
                    "WHERE store_id = ? AND member_ref = ?",
                    (version, time.time(), store_id, ref),
                )
        return version

    # --- what the coordinator publishes ---------------------------------------------------------------

    def unpublished(self) -> list[tuple[str, str, int]]:
        """(store, member_ref, version) of member states changed since they were last published."""
        with self._lock:
            rows = self._db.execute(
                "SELECT store_id, member_ref, version FROM members WHERE published < version ORDER BY version"
            ).fetchall()
        return [(str(s), str(r), int(v)) for s, r, v in rows]

    def state(self, store_id: str, ref: str) -> dict[str, Any] | None:
        """The member state terminals import (signed and published retained by the coordinator)."""
        with self._lock:
            row = self._db.execute(
                "SELECT member_id, version, erased, consent FROM members WHERE store_id = ? AND member_ref = ?",
                (store_id, ref),
            ).fetchone()
            if row is None:
                return None
            member_id, version, erased, consent = row
            if erased:
                return {"member_ref": ref, "version": int(version), "erased": True}
            bundles = self._db.execute(
                "SELECT model, templates FROM bundles WHERE store_id = ? AND member_ref = ? ORDER BY captured_at DESC",
                (store_id, ref),
            ).fetchall()
            cards = [
                str(c)
                for (c,) in self._db.execute(
                    "SELECT card_hash FROM cards WHERE store_id = ? AND member_ref = ? ORDER BY card_hash",
                    (store_id, ref),
                )
            ]
        by_model: dict[str, list[dict[str, str]]] = {}
        for model, templates in bundles:
            held = by_model.setdefault(str(model), [])
            held += json.loads(templates)[: max(0, MAX_STATE_TEMPLATES - len(held))]
        return {
            "member_ref": ref,
            "member_id": member_id,
            "version": int(version),
            "consent": json.loads(consent) if consent else None,
            "templates": by_model,
            "cards": cards,
        }

    def mark_published(self, store_id: str, ref: str, version: int) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE members SET published = ? WHERE store_id = ? AND member_ref = ? AND published < ?",
                (version, store_id, ref, version),
            )

    def manifest(self, store_id: str) -> dict[str, Any]:
        """Every member state of the store with its version: a terminal compares it with what it imported."""
        with self._lock:
            row = self._db.execute("SELECT version FROM stores WHERE store_id = ?", (store_id,)).fetchone()
            members = self._db.execute(
                "SELECT member_ref, version FROM members WHERE store_id = ? ORDER BY member_ref", (store_id,)
            ).fetchall()
        return {"version": int(row[0]) if row else 0, "members": {str(r): int(v) for r, v in members}}

    def member_ref_of(self, store_id: str, member_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT member_ref FROM members WHERE store_id = ? AND member_id = ?", (store_id, member_id)
            ).fetchone()
        return str(row[0]) if row else None

    def members(self, store_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT m.member_ref, m.member_id, m.version, m.erased, "
                "(SELECT COUNT(DISTINCT origin) FROM bundles b WHERE b.store_id = m.store_id "
                "AND b.member_ref = m.member_ref), "
                "(SELECT COUNT(*) FROM cards c WHERE c.store_id = m.store_id AND c.member_ref = m.member_ref) "
                "FROM members m WHERE m.store_id = ? ORDER BY m.member_ref",
                (store_id,),
            ).fetchall()
        return [
            {"member_ref": r, "member_id": m, "version": v, "erased": bool(e), "terminals": t, "cards": c}
            for r, m, v, e, t, c in rows
        ]

    # --- proof of erasure ------------------------------------------------------------------------------

    @staticmethod
    def _confirm(db: sqlite3.Connection, store_id: str, ref: str, terminal: str, detail: str) -> None:
        db.execute(
            "UPDATE proofs SET confirmed_at = ?, detail = ? "
            "WHERE store_id = ? AND member_ref = ? AND terminal_id = ? AND confirmed_at IS NULL",
            (time.time(), detail, store_id, ref, terminal),
        )

    def confirm(self, store_id: str, ref: str, terminal: str, detail: str) -> None:
        """A terminal's verified reply to ``erase-member``: its proof."""
        with self._write() as db:
            self._confirm(db, store_id, ref, terminal, detail)

    def note_failure(self, store_id: str, ref: str, terminal: str, detail: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE proofs SET detail = ? WHERE store_id = ? AND member_ref = ? AND terminal_id = ?",
                (detail, store_id, ref, terminal),
            )

    def due(self, retry_s: float, now: float | None = None) -> list[DueCommand]:
        """Unconfirmed erasures whose last command is older than ``retry_s``; marked as tried now."""
        now = time.time() if now is None else now
        with self._write() as db:
            rows = db.execute(
                "SELECT store_id, member_ref, terminal_id, attempts FROM proofs "
                "WHERE confirmed_at IS NULL AND last_try <= ? ORDER BY store_id, member_ref, terminal_id",
                (now - retry_s,),
            ).fetchall()
            db.executemany(
                "UPDATE proofs SET attempts = attempts + 1, last_try = ? "
                "WHERE store_id = ? AND member_ref = ? AND terminal_id = ?",
                [(now, s, r, t) for s, r, t, _ in rows],
            )
        return [DueCommand(str(s), str(r), str(t), int(a) + 1) for s, r, t, a in rows]

    def progress(self, store_id: str | None = None) -> list[ErasureProgress]:
        with self._lock:
            erasures = self._db.execute(
                "SELECT store_id, member_ref, requested_at, requested_by FROM erasures "
                + ("WHERE store_id = ? " if store_id else "")
                + "ORDER BY requested_at",
                (store_id,) if store_id else (),
            ).fetchall()
            out = []
            for s, r, at, by in erasures:
                proofs = self._db.execute(
                    "SELECT terminal_id, confirmed_at FROM proofs WHERE store_id = ? AND member_ref = ? "
                    "ORDER BY terminal_id",
                    (s, r),
                ).fetchall()
                out.append(
                    ErasureProgress(
                        str(s),
                        str(r),
                        float(at),
                        str(by),
                        [str(t) for t, c in proofs if c is not None],
                        [str(t) for t, c in proofs if c is None],
                    )
                )
        return out
