"""Erasure leaves nothing: a member planted in every event type that can carry one and in every file the agent
writes is gone from every byte under the state directory after ``store-agent members erase``.

Real files throughout: the gallery (templates, consent, audit matches), the store-sharing journal (a pending
``member.enrolled``, shared cards), the outbox (one event of every type the agent emits, the member planted in
every type whose schema names a member, top level or nested), a corrupt outbox moved aside and salvaged at start,
the counters and the trust files. The erasure runs as the real command in a subprocess; then every file under the
state directory is read and searched for the member id (as stored and JSON-escaped), their audit subject and
their consent reference. A second member, planted the same way, must still be there: erasure is exact.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from agent.config.loader import load_config
from agent.config.schema import OutboxSettings
from agent.delivery.outbox import OUTBOX_FILE, Outbox
from agent.delivery.sqlite_file import moved_aside
from agent.delivery.topics import Topics
from agent.events import DeviceStateChanged, EventBody, EventStamper, StorageStateChanged, member_ids
from agent.identity import audit
from agent.identity.fusion import IdentityClaim
from agent.identity.gallery import Consent, Gallery
from agent.identity.sync import (
    MemberEnrolled,
    MemberErased,
    SharedConsent,
    SyncJournal,
    SyncRecorder,
    member_ref,
    seal_templates,
)
from agent.pipelines.face.events import ShopperIdentified, SpoofSuspected, VisitorSeen
from agent.pipelines.face.resources import gallery_path
from agent.pipelines.motion.events import MotionEvent
from agent.pipelines.people.events import (
    PersonEntered,
    PersonExited,
    QueueLength,
    ZoneEntered,
    ZoneLeft,
    ZoneOccupancy,
)
from agent.pipelines.product.events import ProductInterest, ProductMismatch, ProductRecognized
from agent.pipelines.registry import EVENT_TYPES
from agent.pipelines.serial.events import BarcodeScanned, CardTapped
from agent.pipelines.speech.events import SpeechIntent
from agent.runtime.state import StateStore
from agent.runtime.trust import load_trust
from agent.schemas import validate_payload
from models.face.analyzer import EMBEDDER_MODELS
from tests.conftest import REPO

MEMBER = "M-ERASE-Zoë-4711"  # not ASCII: found as stored (UTF-8) and JSON-escaped
KEEP = "M-KEEP-0815"
CONSENT = {MEMBER: "CONSENT-REF-ERASE-93", KEEP: "CONSENT-REF-KEEP-17"}
GALLERY_KEY = secrets.token_bytes(32)
STORE_KEY = secrets.token_bytes(32)
MODEL = EMBEDDER_MODELS["sface"]


def _claim(member: str) -> IdentityClaim:
    return IdentityClaim(member_id=member, fused_confidence=0.93, modalities={"face": 0.9, "gait": 0.4})


def bodies(member: str) -> list[EventBody]:
    """One event of every type the agent emits; ``member`` in every one whose schema names a member."""
    now = time.time()
    ref = member_ref("s1", member)
    return [
        ShopperIdentified(captured_at=now, member_id=member, confidence=0.8, margin=0.2, liveness=0.9,
                          camera="door", track_id="a1b2c3-1", frames=5),
        CardTapped(captured_at=now, device="nfc", member_id=member),
        SpeechIntent(captured_at=now, intent="find", language="en", confidence=0.7, microphone="mic",
                     engine="pocketsphinx", duration_s=1.2, member_id=member),
        ProductInterest(captured_at=now, trigger="held", camera="shelf", zone="z", dwell_s=3.0, sku="sku-1",
                        track_id="a1b2c3-2", member_id=member),
        ProductRecognized(captured_at=now, sku="sku-1", name="Tea", method="vision", score=0.9, camera="shelf",
                          member_id=member),
        PersonEntered(captured_at=now, camera="door", line="in", track_id="a1b2c3-3", identity=_claim(member)),
        PersonExited(captured_at=now, camera="door", line="in", track_id="a1b2c3-3", identity=_claim(member)),
        ZoneEntered(captured_at=now, camera="floor", zone="tills", track_id="a1b2c3-4", identity=_claim(member)),
        ZoneLeft(captured_at=now, camera="floor", zone="tills", track_id="a1b2c3-4", dwell_s=9.0, track_ended=False,
                 identity=_claim(member)),
        MemberEnrolled(captured_at=now, member_id=member, member_ref=ref,
                       consent={"reference": CONSENT[member], "scope": "identification", "coverage": "store",
                                "granted_at": now, "expires_at": None, "guardian": False},
                       model=MODEL, templates=seal_templates(STORE_KEY, "s1", member, MODEL, _vectors(1), "t1")),
    ]  # fmt: skip


def anonymous_bodies() -> list[EventBody]:
    """The event types that name no member (they must all survive the erasure)."""
    now = time.time()
    return [
        BarcodeScanned(captured_at=now, device="scanner", code="4006381333931", symbology="ean-13"),
        DeviceStateChanged(captured_at=now, device="cam", kind="camera", state="online", previous="offline"),
        StorageStateChanged(captured_at=now, path="/var/lib/store-agent", state="ok", previous="full"),
        MemberErased(captured_at=now, member_ref="0" * 32, reason="request"),
        MotionEvent(captured_at=now, camera="door", state="started", area=0.1, bbox=(0.1, 0.1, 0.3, 0.3)),
        QueueLength(captured_at=now, camera="floor", zone="tills", length=3, longest_wait_s=40.0),
        ZoneOccupancy(captured_at=now, camera="floor", zone="tills", count=2, reason="change"),
        ProductMismatch(captured_at=now, device="scanner", code="1", scanned_sku="a", seen_sku="b", seen_score=0.8,
                        camera="shelf", zone="z", seconds_apart=2.0),
        SpoofSuspected(captured_at=now, camera="door", track_id="a1b2c3-5", score=0.2, frames=4),
        VisitorSeen(captured_at=now, visitor_id="v-0123456789abcdef", camera="door", frames=3),
        CardTapped(captured_at=now, device="nfc", card_hash="hmac-sha256:" + "cd" * 32),
    ]  # fmt: skip


def _config(root: Path) -> Path:
    data = {
        "version": 1,
        "store": {"id": "s1", "name": "Test"},
        "terminal": {"id": "t1"},
        "storage": {"state_dir": str(root / "state")},
        "cameras": [{"name": "door", "type": "test-pattern", "width": 320, "height": 240, "fps": 5}],
        "pipelines": {"face": {"enabled": True}},
        "identity": {"sync": {"enabled": True, "store_key_env": "TEST_STORE_KEY"}},
        "privacy": {"egress": {"biometric_templates": True}},
    }
    path = root / "store.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _vectors(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(v / np.linalg.norm(v)).astype(np.float32) for v in rng.normal(size=(3, 128))]


def _plant(config_path: Path) -> Path:
    """Every file the agent writes, with both members in it; returns the state directory."""
    config = load_config(config_path).config
    state = Path(config.storage.state_dir)
    stamper = EventStamper("s1", "t1", StateStore(state).next_seq)  # counters.json
    load_trust(config, state).nonces.close()  # the terminal key and the nonce store
    gallery = Gallery(gallery_path(state), GALLERY_KEY, MODEL)
    journal = SyncJournal(state / "identity" / "sync.sqlite3")
    recorder = SyncRecorder(journal, "s1", "t1", STORE_KEY, templates_may_leave=True)
    for seed, member in enumerate((MEMBER, KEEP)):
        gallery.enroll(member, _vectors(seed), [0.9, 0.8, 0.7], Consent(CONSENT[member], coverage="store"))
        for camera in ("door", "tills"):
            gallery.record("match", member, {"camera": camera, "score": 0.81})
        consent = SharedConsent(CONSENT[member], "identification", "store", time.time(), None, False)
        assert recorder.enrolled(member, consent, MODEL, _vectors(seed))
        journal.set_cards(member_ref("s1", member), member, ["ef" * 32])
    gallery.close()
    journal.close()

    outbox_path = state / OUTBOX_FILE
    box = Outbox(outbox_path, OutboxSettings(), Topics("store", "s1", "t1"))
    for member in (MEMBER, KEEP):
        for body in bodies(member):
            event = stamper.stamp(body)
            validate_payload(event.to_payload())  # every type, as the agent emits it, meets its schema
            assert member in member_ids(event.to_payload()), event.type
            box.accept(event)
    for body in anonymous_bodies():
        event = stamper.stamp(body)
        validate_payload(event.to_payload())
        box.accept(event)
    for i in range(400):  # enough pages that a truncated file still holds the members' rows
        box.accept(stamper.stamp(BarcodeScanned(captured_at=time.time(), device="scanner", code=f"{i:013d}")))
    box.close()
    covered = {b.TYPE for b in bodies(MEMBER)} | {b.TYPE for b in anonymous_bodies()}
    assert covered == set(EVENT_TYPES), set(EVENT_TYPES) ^ covered

    os.truncate(outbox_path, outbox_path.stat().st_size * 3 // 4)  # a power cut: moved aside and salvaged
    reopened = Outbox(outbox_path, OutboxSettings(), Topics("store", "s1", "t1"))
    assert reopened.moved_aside is not None and reopened.restored > 20
    reopened.close()
    return state


def _needles(member: str) -> dict[str, bytes]:
    return {
        "id": member.encode(),
        "id (JSON-escaped)": json.dumps(member)[1:-1].encode(),
        "audit subject": audit.subject_of(GALLERY_KEY, member).encode(),
        "consent reference": CONSENT[member].encode(),
    }


def _scan(state: Path, member: str) -> dict[str, list[str]]:
    """For every file under ``state``: which of the member's needles its bytes hold."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in state.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits = [what for what, needle in _needles(member).items() if needle in data]
        if hits:
            found[str(path.relative_to(state))] = hits
    return found


def test_erasure_leaves_no_byte_of_the_member(tmp_path: Path) -> None:
    config = _config(tmp_path)
    state = _plant(config)
    files = sorted(p for p in state.rglob("*") if p.is_file())
    before = _scan(state, MEMBER)
    aside = moved_aside(state / OUTBOX_FILE)
    assert aside, "a moved-aside outbox"
    for where in (OUTBOX_FILE, "identity/gallery.db", "identity/sync.sqlite3", aside[0].name):
        assert where in before, f"the member was planted in {where}: {before}"
    assert "audit subject" in before["identity/gallery.db"]

    env = {**os.environ, "STORE_AGENT_GALLERY_KEY": GALLERY_KEY.hex(), "TEST_STORE_KEY": STORE_KEY.hex()}
    done = subprocess.run(
        [sys.executable, "-m", "agent", "members", "erase", "-c", str(config), MEMBER],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"erased {MEMBER}" in done.stdout

    after = _scan(state, MEMBER)
    scanned = sorted(p for p in state.rglob("*") if p.is_file())
    print(
        f"\nerasure: {len(scanned)} files scanned ({len(files)} before), {len(before)} held the member before, "
        f"{len(after)} after: {after}"
    )
    assert after == {}, after

    # exact: the other member and every anonymous event are still there
    kept = _scan(state, KEEP)
    assert {OUTBOX_FILE, "identity/gallery.db", "identity/sync.sqlite3"} <= set(kept), kept
    with sqlite3.connect(state / OUTBOX_FILE) as db:
        types = [json.loads(p)["type"] for (p,) in db.execute("SELECT payload FROM events ORDER BY id")]
        orphans = db.execute("SELECT COUNT(*) FROM event_members WHERE member_id = ?", (MEMBER,)).fetchone()[0]
    assert orphans == 0
    for body in anonymous_bodies():
        assert body.TYPE in types, body.TYPE

    gallery = Gallery(gallery_path(state), GALLERY_KEY, MODEL)
    try:
        assert [m.member_id for m in gallery.members()] == [KEEP]
        entries = gallery.audit_entries()
        assert gallery.verify_audit() == len(entries)
        erase = entries[-1]
        # the member's enrolment and two matches: redacted; the erasure's own entry names no one
        assert erase.action == "erase" and erase.subject is None and len(erase.detail["redacted"]) == 3
        assert sum(e.redacted for e in entries) == 3
    finally:
        gallery.close()


def test_an_outbox_from_before_the_member_index_is_indexed_at_open(tmp_path: Path) -> None:
    """Rows queued by an older agent (nested members not in the ``member_id`` column) are found all the same."""
    path = tmp_path / OUTBOX_FILE
    stamper = EventStamper("s1", "t1", iter(range(1, 1000)).__next__)
    box = Outbox(path, OutboxSettings(), Topics("store", "s1", "t1"))
    for body in bodies(MEMBER):
        box.accept(stamper.stamp(body))
    box.close()
    with sqlite3.connect(path) as db:  # as the old outbox stored them: the column only for a top-level member
        db.execute("DROP TABLE event_members")
        db.execute("DROP TRIGGER IF EXISTS event_members_gone")
        db.execute(
            "UPDATE events SET member_id = NULL WHERE json_extract(CAST(payload AS TEXT), '$.member_id') IS NULL"
        )
    reopened = Outbox(path, OutboxSettings(), Topics("store", "s1", "t1"))
    try:
        assert reopened.delete_member_events(MEMBER) == len(bodies(MEMBER))
        assert reopened.stats()["depth"] == 0
    finally:
        reopened.close()
    assert MEMBER.encode() not in path.read_bytes()


def test_moved_aside_without_the_member_stays_for_inspection(tmp_path: Path) -> None:
    path = tmp_path / OUTBOX_FILE
    stamper = EventStamper("s1", "t1", iter(range(1, 10_000)).__next__)
    box = Outbox(path, OutboxSettings(), Topics("store", "s1", "t1"))
    for body in bodies(KEEP):
        box.accept(stamper.stamp(body))
    box.close()
    aside = path.with_name(f"{OUTBOX_FILE}.corrupt-20260101T000000")
    shutil.copy(path, aside)
    box = Outbox(path, OutboxSettings(), Topics("store", "s1", "t1"))
    try:
        box.delete_member_events(MEMBER)
        assert aside.exists(), "it never held the member"
        box.delete_member_events(KEEP)
        assert not aside.exists(), "it held the member erased"
    finally:
        box.close()
