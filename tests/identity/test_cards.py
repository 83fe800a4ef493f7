"""Card identity: keyed hashes, the member registry, and schema-valid card.tapped payloads."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import jsonschema
import pytest

from agent.errors import AgentError
from agent.events import EventStamper
from agent.identity.cards import CardIdentity, CardIdentityError, card_hash, load_registry, load_secret
from agent.pipelines.serial.events import CardTapped, card_tapped
from agent.schemas import load_schema, registry

SECRET = b"store-0042-secret-0123456789abcdef"


def validate(payload: dict[str, object]) -> None:
    jsonschema.Draft202012Validator(load_schema("card.tapped"), registry=registry()).validate(payload)


def test_hash_is_hmac_sha256_of_the_upper_case_uid() -> None:
    expected = hmac.new(SECRET, b"04A1B2C3D4E580", hashlib.sha256).hexdigest()
    assert card_hash("04a1b2c3d4e580", SECRET) == expected
    assert card_hash("04A1B2C3D4E580", b"another-store-secret-0123") != expected  # unlinkable across stores
    with pytest.raises(ValueError, match="4 to 10 bytes"):
        card_hash("ABC", SECRET)
    with pytest.raises(CardIdentityError, match="at least 16 bytes"):
        card_hash("DEADBEEF", b"short")


def test_secret_from_env_and_credential(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARD_SECRET", SECRET.decode())
    assert load_secret(env="CARD_SECRET") == SECRET
    monkeypatch.delenv("CARD_SECRET")
    with pytest.raises(CardIdentityError, match="CARD_SECRET is not set"):
        load_secret(env="CARD_SECRET")
    (tmp_path / "card-secret").write_bytes(SECRET + b"\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert load_secret(credential="card-secret") == SECRET


def test_registry_yaml_and_csv(tmp_path: Path) -> None:
    digest = card_hash("DEADBEEF", SECRET)
    yml = tmp_path / "members.yaml"
    yml.write_text(f"hmac-sha256:{digest}: m-1001\n")
    assert load_registry(yml) == {digest: "m-1001"}
    csv_file = tmp_path / "members.csv"
    csv_file.write_text(f"card_hash,member_id\n{digest.upper()},m-1001\nDEADBEEF,m-2\n")
    with pytest.raises(CardIdentityError, match=r"members.csv:3: card hash must be 64 hex digits.*not a raw UID"):
        load_registry(csv_file)
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("uid,member\n")
    with pytest.raises(CardIdentityError, match=r"bad\.csv:1: header must name"):
        load_registry(bad_header)


def test_events_never_carry_the_raw_uid() -> None:
    identity = CardIdentity(SECRET, {card_hash("DEADBEEF", SECRET): "m-1001"})
    stamper = EventStamper("store-1", "term-1", iter(range(1, 100)).__next__)
    member = card_tapped("nfc", "DEADBEEF", identity, captured_at=1_700_000_000.0)
    stranger = card_tapped("nfc", "04A1B2C3D4E580", identity, captured_at=1_700_000_001.0)
    assert member.member_id == "m-1001" and member.card_hash is None
    assert stranger.member_id is None and stranger.card_hash == "hmac-sha256:" + card_hash("04A1B2C3D4E580", SECRET)
    for body in (member, stranger):
        event = stamper.stamp(body)
        validate(event.to_payload())
        assert "DEADBEEF" not in event.to_json().upper() and "04A1B2C3D4E580" not in event.to_json().upper()
    with pytest.raises(ValueError, match="exactly one"):
        CardTapped(captured_at=0.0, device="nfc")


def test_the_config_names_where_the_card_secret_comes_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``identity.cards.secret_credential`` (a systemd credential) or ``secret_env``: the card hashes in events
    are keyed with the secret found there."""
    from agent.config.loader import parse_config
    from agent.runtime.wiring import card_identity
    from tests.media import config_text

    (tmp_path / "till-card-secret").write_bytes(SECRET + b"\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    other = b"another-store-secret-0123456789"
    monkeypatch.setenv("OTHER_CARD_SECRET", other.decode())

    def hashed(cards: str) -> str | None:
        config = parse_config(config_text(tmp_path, f"identity:\n  cards: {cards}\n"), base_dir=tmp_path)
        return card_tapped("nfc", "DEADBEEF", card_identity(config), captured_at=0.0).card_hash

    assert hashed("{secret_credential: till-card-secret}") == "hmac-sha256:" + card_hash("DEADBEEF", SECRET)
    assert hashed("{secret_env: OTHER_CARD_SECRET}") == "hmac-sha256:" + card_hash("DEADBEEF", other)
    with pytest.raises(AgentError, match=r"identity\.cards: card secret"):
        hashed("{secret_credential: missing-secret}")
