"""The keyed audit chain: redaction keeps it verifiable, a forged or shortened chain is caught, old chains move."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from agent.identity import audit
from agent.identity.audit import AuditBroken, AuditChain

KEY = b"g" * 32


def _chain(entries: int = 4) -> tuple[sqlite3.Connection, AuditChain]:
    db = sqlite3.connect(":memory:", isolation_level=None)
    chain = AuditChain(db, KEY)
    for i in range(entries):
        chain.append("match", "subject-a" if i % 2 == 0 else "subject-b", {"camera": f"door-{i}", "score": 0.9})
    return db, chain


def test_redaction_keeps_the_chain_and_leaves_a_record_naming_no_one() -> None:
    db, chain = _chain()
    before = chain.verify()
    seqs = chain.redact("subject-a")
    assert seqs == [1, 3]
    chain.append(audit.ERASE, None, {"reason": "request", "redacted": seqs})
    head = chain.verify()
    assert head.seq == before.seq + 1
    entries = chain.entries()
    assert [e.redacted for e in entries] == [True, False, True, False, False]
    dump = "\n".join(map(str, db.iterdump()))
    assert "subject-a" not in dump and "door-0" not in dump and "door-2" not in dump
    assert "subject-b" in dump and "door-1" in dump
    assert entries[-1].subject is None and entries[-1].detail["redacted"] == [1, 3]


def test_a_redaction_without_an_erasure_record_is_caught() -> None:
    _db, chain = _chain()
    chain.redact("subject-b")  # someone hiding entries: no erase entry lists them
    with pytest.raises(AuditBroken, match="entry 2 was redacted without an erasure record"):
        chain.verify()


def test_fields_kept_without_their_salt_or_changed_are_caught() -> None:
    db, chain = _chain()
    db.execute("UPDATE audit_log SET salt = NULL WHERE seq = 2")
    with pytest.raises(AuditBroken, match=r"entry 2 .*without their salt"):
        chain.verify()
    db2, chain2 = _chain()
    db2.execute("UPDATE audit_log SET at = at + 60 WHERE seq = 3")
    with pytest.raises(AuditBroken, match=r"entry 3 .*changed"):
        chain2.verify()


def test_a_chain_recomputed_without_the_key_is_caught() -> None:
    """Deleting the newest entry and re-chaining what is left with another key: the MACs do not verify."""
    db, chain = _chain()
    db.execute("DELETE FROM audit_log WHERE seq = 4")
    prev = audit.GENESIS
    for seq, action, commitment in db.execute("SELECT seq, action, commitment FROM audit_log ORDER BY seq").fetchall():
        mac = audit._mac(audit.chain_key(b"x" * 32), seq, action, commitment, prev)
        db.execute("UPDATE audit_log SET prev = ?, mac = ? WHERE seq = ?", (prev, mac, seq))
        prev = mac
    with pytest.raises(AuditBroken, match="entry 1"):
        chain.verify()


def test_a_truncated_chain_verifies_but_its_head_went_back() -> None:
    """Deleting the newest entries leaves a valid shorter chain: what catches it is the published head."""
    db, chain = _chain()
    published = chain.verify()
    db.execute("DELETE FROM audit_log WHERE seq >= 3")
    now = chain.verify()
    assert now.seq < published.seq  # the hub compares: seq went back (health's audit.head_seq)


def _legacy(db: sqlite3.Connection, rows: int) -> None:
    """An unkeyed chain as galleries before the keyed one wrote it (table ``audit``)."""
    db.execute(
        "CREATE TABLE audit (seq INTEGER PRIMARY KEY, at REAL NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL,"
        " detail TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL)"
    )
    prev = audit.GENESIS
    for seq in range(1, rows + 1):
        detail = json.dumps({"n": seq}, sort_keys=True, separators=(",", ":"))
        body = json.dumps([seq, repr(1000.0 + seq), "enroll", "s", detail, prev], separators=(",", ":"))
        digest = hashlib.sha256(body.encode()).hexdigest()
        db.execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?)", (seq, 1000.0 + seq, "enroll", "s", detail, prev, digest)
        )
        prev = digest


@pytest.mark.parametrize("tampered", [False, True])
def test_an_unkeyed_chain_is_migrated_with_its_verdict(tmp_path: Path, tampered: bool) -> None:
    db = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    _legacy(db, 3)
    if tampered:
        db.execute("DELETE FROM audit WHERE seq = 2")
    chain = AuditChain(db, KEY)
    entries = chain.entries()
    assert [e.action for e in entries][-1] == "audit-migrated"
    assert entries[0].at == 1001.0 and entries[0].detail == {"n": 1}
    verdict = entries[-1].detail["unkeyed_chain"]
    assert (verdict == "ok") is not tampered
    assert chain.verify().seq == len(entries)
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'audit'").fetchone() is None
