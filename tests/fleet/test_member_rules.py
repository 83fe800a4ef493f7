"""The rules of store-wide members, without a broker: what a terminal announces, what the hub merges, what a
terminal imports or refuses. Real crypto, real galleries, real SQLite; embeddings are unit vectors (the rules
do not depend on what a face looks like; the system test uses real faces)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from agent.events import EventBody
from agent.hub.fleet_store import FleetError, FleetStore
from agent.identity.gallery import Gallery
from agent.identity.sync import (
    MemberEnrolled,
    MemberErased,
    SharedConsent,
    SyncError,
    SyncJournal,
    SyncRecorder,
    member_ref,
    open_templates,
    seal_templates,
)
from agent.runtime.member_sync import MANIFEST, MemberSync
from agent.trust.keys import HubPrivateKey
from agent.trust.messages import sign
from tests.delivery.conftest import TEST_HUB

STORE = "s1"
MODEL = "sface"
PREFIX = "store"


def vectors(n: int, seed: int) -> list[npt.NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    out = rng.standard_normal((n, 128)).astype(np.float32)
    return list(out / np.linalg.norm(out, axis=1, keepdims=True))


def consent(coverage: str = "store", granted_at: float = 1000.0) -> dict[str, Any]:
    return {
        "reference": "form-1",
        "scope": "identification",
        "coverage": coverage,
        "granted_at": granted_at,
        "expires_at": None,
        "guardian": False,
    }


class Terminal:
    """One terminal's gallery, journal and sync service; emitted events land in ``sent``."""

    def __init__(self, root: Path, name: str, store_key: bytes, egress: bool = True) -> None:
        self.name = name
        self.gallery = Gallery(root / name / "gallery.sqlite3", secrets.token_bytes(32), MODEL)
        self.journal = SyncJournal(root / name / "sync.sqlite3")
        self.recorder = SyncRecorder(self.journal, STORE, name, store_key, egress)
        self.sent: list[EventBody] = []
        self.sync = MemberSync(
            self.recorder,
            store_key,
            [TEST_HUB.public],
            open_gallery=lambda: self.gallery,
            shared_gallery=lambda: self.gallery,
            emit=self.take,
            flush=lambda: True,
            topic_prefix=PREFIX,
        )

    def take(self, body: EventBody) -> EventBody:
        """Where the daemon's agent would stamp the event and put it in the outbox."""
        self.sent.append(body)
        return body

    def close(self) -> None:
        self.gallery.close()
        self.journal.close()


@pytest.fixture
def store_key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def terminals(tmp_path: Path, store_key: bytes) -> Iterator[dict[str, Terminal]]:
    made = {name: Terminal(tmp_path, name, store_key) for name in ("a", "b")}
    yield made
    for t in made.values():
        t.close()


def publish(fleet: FleetStore, hub: HubPrivateKey = TEST_HUB) -> list[tuple[str, bytes]]:
    """What the coordinator would publish for every changed member, signed (plus the manifest)."""
    out = []
    for store_id, ref, version in fleet.unpublished():
        topic = f"{PREFIX}/{store_id}/_members/{ref}"
        out.append((topic, sign(hub, topic, json.dumps(fleet.state(store_id, ref)).encode())))
        fleet.mark_published(store_id, ref, version)
    topic = f"{PREFIX}/{STORE}/_members/{MANIFEST}"
    out.append((topic, sign(hub, topic, json.dumps(fleet.manifest(STORE)).encode())))
    return out


def announce(fleet: FleetStore, terminal: Terminal, at: float | None = None) -> None:
    """The terminal's pending announcements, as the hub takes them."""
    terminal.sync.announce(time.time())
    for body in terminal.sent:
        if isinstance(body, MemberEnrolled):
            fleet.enrolled(
                STORE,
                terminal.name,
                body.member_id,
                body.member_ref,
                body.consent,
                body.model,
                body.templates,
                at or time.time(),
            )
        elif isinstance(body, MemberErased):
            fleet.erased(STORE, body.member_ref, terminal.name, body.reason, at or time.time(), ["a", "b"])
    terminal.sent.clear()


def test_templates_travel_sealed_to_the_store_member_and_model(store_key: bytes) -> None:
    plain = vectors(2, 1)
    sealed = seal_templates(store_key, STORE, "m-1", MODEL, plain, "a")
    assert all(set(s) == {"origin", "nonce", "ct"} for s in sealed)
    assert np.allclose(open_templates(store_key, STORE, "m-1", MODEL, sealed), plain)
    for key, store, member, model in [
        (secrets.token_bytes(32), STORE, "m-1", MODEL),  # another store's key
        (store_key, "s2", "m-1", MODEL),  # moved to another store
        (store_key, STORE, "m-2", MODEL),  # moved to another member
        (store_key, STORE, "m-1", "other"),  # relabelled as another embedder's
    ]:
        with pytest.raises(SyncError, match="does not open"):
            open_templates(key, store, member, model, sealed)


def test_only_store_consent_with_egress_allowed_is_announced(tmp_path: Path, store_key: bytes) -> None:
    quiet = Terminal(tmp_path, "q", store_key, egress=False)
    open_ = Terminal(tmp_path, "o", store_key, egress=True)
    try:
        shared = SharedConsent("f", "identification", "store", 1.0, None, False)
        assert not quiet.recorder.enrolled("m-1", shared, MODEL, vectors(1, 0)), "egress off: nothing leaves"
        local = SharedConsent("f", "identification", "terminal", 1.0, None, False)
        assert not open_.recorder.enrolled("m-1", local, MODEL, vectors(1, 0)), "terminal consent stays here"
        assert open_.recorder.enrolled("m-2", shared, MODEL, vectors(1, 0))
        assert open_.sync.announce(time.time()) == 1
        (body,) = open_.sent
        assert isinstance(body, MemberEnrolled) and body.member_ref == member_ref(STORE, "m-2")
        assert open_.journal.pending() == [], "announced entries leave the journal once the outbox holds them"
        payload = json.dumps(body.templates)
        assert "m-2" not in payload and len(body.templates) == 1
    finally:
        quiet.close()
        open_.close()


def test_two_enrolments_of_one_member_converge_and_erasure_wins(
    tmp_path: Path, terminals: dict[str, Terminal], store_key: bytes
) -> None:
    fleet = FleetStore(tmp_path / "hub.sqlite3")
    a, b = terminals["a"], terminals["b"]
    first = SharedConsent("f-a", "identification", "store", 1000.0, None, False)
    second = SharedConsent("f-b", "identification", "store", 2000.0, None, False)
    a.recorder.enrolled("m-1", first, MODEL, vectors(2, 1))
    b.recorder.enrolled("m-1", second, MODEL, vectors(3, 2))
    announce(fleet, a, at=1000.0)
    announce(fleet, b, at=2000.0)
    for topic, payload in publish(fleet):
        for t in (a, b):
            t.sync.apply(topic, payload)
    for t in (a, b):
        (info,) = t.gallery.members()
        assert info.templates == 5, "the union of both terminals' templates"
        assert info.consent.reference == "f-b" and info.consent.coverage == "store", "the newest consent"
        assert t.journal.progress()["behind"] == 0

    # Erased at b: the tombstone erases the member at a; a late enrolment captured before the erasure is ignored.
    from agent.identity import sync
    from agent.identity.enrollment import erase_member

    sync.set_recorder(b.recorder)
    try:
        erase_member(b.gallery, "m-1", "request")
    finally:
        sync.set_recorder(None)
    announce(fleet, b, at=3000.0)
    late = seal_templates(store_key, STORE, "m-1", MODEL, vectors(1, 3), "a")
    ref = member_ref(STORE, "m-1")
    assert fleet.enrolled(STORE, "a", "m-1", ref, consent(granted_at=900.0), MODEL, late, 2500.0) is None
    outcomes = [a.sync.apply(topic, payload) for topic, payload in publish(fleet)]
    assert "erased" in outcomes and a.gallery.members() == []
    (progress,) = fleet.progress(STORE)
    assert progress.confirmed == ["b"] and progress.missing == ["a"], "b confirmed by announcing"
    version = fleet.manifest(STORE)["version"]
    assert fleet.erased(STORE, ref, "a", "consent expired", 3500.0, ["a", "b"]) == version, "the same erasure"
    assert fleet.progress(STORE)[0].line() == "erased on 2 of 2 terminals", "a's own announcement is its proof"

    # Consent given again after the erasure revives the member.
    a.recorder.enrolled(
        "m-1", SharedConsent("f-c", "identification", "store", 4000.0, None, False), MODEL, vectors(1, 4)
    )
    announce(fleet, a, at=4000.0)
    for topic, payload in publish(fleet):
        b.sync.apply(topic, payload)
    (info,) = b.gallery.members()
    assert info.templates == 1 and info.consent.reference == "f-c"
    fleet.close()


def test_terminal_refuses_states_the_hub_did_not_sign_or_cannot_belong(
    terminals: dict[str, Terminal], store_key: bytes
) -> None:
    a = terminals["a"]
    ref = member_ref(STORE, "m-1")
    topic = f"{PREFIX}/{STORE}/_members/{ref}"
    elsewhere = f"{PREFIX}/{STORE}/_members/{'0' * 32}"
    sealed = seal_templates(store_key, STORE, "m-1", MODEL, vectors(1, 0), "b")
    foreign = seal_templates(secrets.token_bytes(32), STORE, "m-1", MODEL, vectors(1, 0), "b")
    state = {
        "member_ref": ref,
        "member_id": "m-1",
        "version": 1,
        "consent": consent(),
        "cards": [],
        "templates": {MODEL: sealed},
    }
    body = json.dumps(state).encode()
    cases = [
        ("unsigned", topic, body),
        ("unknown key", topic, sign(HubPrivateKey.generate(), topic, body)),
        ("bad signature", topic, sign(TEST_HUB, elsewhere, body)),
        ("another member than its topic", elsewhere, sign(TEST_HUB, elsewhere, body)),
        (
            "coverage 'terminal'",
            topic,
            sign(TEST_HUB, topic, json.dumps({**state, "consent": consent("terminal")}).encode()),
        ),
        ("does not open", topic, sign(TEST_HUB, topic, json.dumps({**state, "templates": {MODEL: foreign}}).encode())),
        ("malformed", topic, sign(TEST_HUB, topic, b'{"member_ref": 5}')),
        ("bytes", topic, b"x" * (512 * 1024 + 1)),
    ]
    for why, where, payload in cases:
        with pytest.raises(SyncError, match=why):
            a.sync.apply(where, payload)
    assert a.gallery.members() == [], "nothing refused was imported"
    assert a.sync.apply(topic, sign(TEST_HUB, topic, body)) == "enrolled"
    assert a.sync.apply(topic, sign(TEST_HUB, topic, body)) == "already", "an old version is not applied again"


def test_cards_travel_with_the_member_and_leave_with_the_erasure(
    tmp_path: Path, terminals: dict[str, Terminal]
) -> None:
    from agent.identity.cards import CardIdentity, card_hash

    fleet = FleetStore(tmp_path / "hub.sqlite3")
    a, b = terminals["a"], terminals["b"]
    secret = secrets.token_bytes(16)
    uid, other_uid = "04A1B2C3D4E5F6", "04FFFFFFFFFFFF"
    a.recorder.enrolled("m-1", SharedConsent("f", "identification", "store", 1.0, None, False), MODEL, vectors(1, 0))
    announce(fleet, a)
    ref = member_ref(STORE, "m-1")
    fleet.set_cards(STORE, ref, "m-1", [card_hash(uid, secret)], [])
    with pytest.raises(FleetError, match="another member"):
        fleet.set_cards(STORE, member_ref(STORE, "m-2"), "m-2", [card_hash(uid, secret)], [])
    card_only = member_ref(STORE, "m-card")
    fleet.set_cards(STORE, card_only, "m-card", [card_hash(other_uid, secret)], [])
    for topic, payload in publish(fleet):
        b.sync.apply(topic, payload)
    reader = CardIdentity(secret, {}, b.journal.card_member)
    assert reader.resolve(uid)[0] == "m-1" and reader.resolve(other_uid)[0] == "m-card"
    assert [m.member_id for m in b.gallery.members()] == ["m-1"], "a card-only member has no templates"
    fleet.erased(STORE, ref, "hub", "request", time.time(), ["a", "b"])
    for topic, payload in publish(fleet):
        b.sync.apply(topic, payload)
    assert reader.resolve(uid)[0] is None, "an erased member's card is anonymous again"
    with pytest.raises(FleetError, match="was erased"):
        fleet.set_cards(STORE, ref, "m-1", [card_hash(uid, secret)], [])
    fleet.close()


def test_enrolment_claiming_another_terminals_templates_is_refused(tmp_path: Path, store_key: bytes) -> None:
    fleet = FleetStore(tmp_path / "hub.sqlite3")
    sealed = seal_templates(store_key, STORE, "m-1", MODEL, vectors(1, 0), "b")
    with pytest.raises(FleetError, match="another terminal"):
        fleet.enrolled(STORE, "a", "m-1", member_ref(STORE, "m-1"), consent(), MODEL, sealed, time.time())
    with pytest.raises(FleetError, match="coverage"):
        fleet.enrolled(STORE, "b", "m-1", member_ref(STORE, "m-1"), consent("terminal"), MODEL, sealed, time.time())
    assert fleet.members(STORE) == []
    fleet.close()


def test_sync_settings_reach_the_recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """identity.sync's key comes from the env variable or the systemd credential; privacy.egress decides whether
    an enrolment leaves; a missing or short key is one clear error naming the setting."""
    from agent.config.loader import load_config
    from agent.errors import AgentError
    from agent.runtime.member_sync import open_recorder
    from tests.delivery.conftest import write_config

    shared = SharedConsent("f", "identification", "store", 1.0, None, False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "store-key").write_text(secrets.token_hex(32))
    monkeypatch.setenv("THE_STORE_KEY", secrets.token_hex(32))
    for sync_settings, egress, announced in [
        ({"enabled": True}, True, True),  # the default credential, store-key
        ({"enabled": True, "store_key_env": "THE_STORE_KEY"}, True, True),
        ({"enabled": True}, False, False),
    ]:
        directory = tmp_path / f"t{len(sync_settings)}{egress}"
        config = load_config(
            write_config(
                directory, 1883, identity={"sync": sync_settings}, privacy={"egress": {"biometric_templates": egress}}
            )
        ).config
        opened = open_recorder(config, directory / "state")
        assert opened is not None
        recorder, key = opened
        try:
            assert recorder.enrolled("m-1", shared, MODEL, vectors(1, 0)) is announced
            if announced:
                sealed = recorder.journal.pending()[0][4]["templates"]
                assert open_templates(key, "test-store", "m-1", MODEL, sealed)
        finally:
            recorder.journal.close()
    off = load_config(write_config(tmp_path / "off", 1883)).config
    assert open_recorder(off, tmp_path / "off" / "state") is None, "sync is off unless enabled"
    (tmp_path / "creds" / "store-key").write_text("abcd")
    short = load_config(write_config(tmp_path / "short", 1883, identity={"sync": {"enabled": True}})).config
    with pytest.raises(AgentError, match=r"identity\.sync: .*store key"):
        open_recorder(short, tmp_path / "short" / "state")
