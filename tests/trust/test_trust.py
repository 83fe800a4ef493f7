"""Trust pieces on their own: the signed-suffix envelope, the command authority's rules, the nonce memory across a
restart, and the terminal's trust settings (hub keys from files or a credential, its own key file)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agent.config.loader import parse_config
from agent.events import compact_json, iso_time
from agent.runtime.trust import load_trust
from agent.trust.commands import CommandAuthority, CommandRefused
from agent.trust.envelope import MAC, SIG, attach, split
from agent.trust.keys import HubPrivateKey, TrustKeyError
from agent.trust.messages import HubVerifier, TerminalRegistry, Verdict, sign, signed_command
from agent.trust.nonces import NonceStore
from tests.media import config_text

HUB = HubPrivateKey.generate()
TOPIC = "store/s1/t1/cmd/erase-member"


def test_envelope_round_trips_the_exact_bytes() -> None:
    # a body ending in an empty object (health's models.unavailable: {}) keeps its comma before the authenticator
    for body in (b"{}", b'{"a":1}', '{"name":"店","n":[1,2]}'.encode(), b'{"a":{"b":{}}}', b'{"s":{},"t":[]}'):
        payload = attach(body, SIG, "kid1", b"x" * 64)
        assert json.loads(payload)["sig"].startswith("kid1:")
        signed = split(payload)
        assert signed is not None and signed.body == body and signed.kid == "kid1" and signed.value == b"x" * 64
    assert split(b'{"a":1}') is None
    assert split(b'{"a":"x","sig":"k:short"}') is None, "a too-short value is not an authenticator"


def authority(tmp_path: Path, **kw: object) -> CommandAuthority:
    return CommandAuthority([HUB.public], NonceStore(tmp_path / "nonces.sqlite3"), **kw)  # type: ignore[arg-type]


def admit(auth: CommandAuthority, payload: bytes, topic: str = TOPIC, name: str = "erase-member") -> dict[str, object]:
    verified = auth.unwrap(topic, name, payload, False)
    return auth.admit(verified, json.loads(verified.body))


def signed_at(issued: float, expires: float, nonce: str = "n" * 32) -> bytes:
    body = {"member_id": "M-1", "issued_at": iso_time(issued), "expires_at": iso_time(expires), "nonce": nonce}
    return sign(HUB, TOPIC, compact_json(body).encode())


def test_clock_skew_and_ttl_limits(tmp_path: Path) -> None:
    """``trust.clock_skew_s`` and ``trust.max_command_ttl_s`` decide what is in time."""
    now = time.time()
    strict = authority(tmp_path / "a", clock_skew_s=0.0, max_ttl_s=60.0)
    lenient = authority(tmp_path / "b", clock_skew_s=300.0, max_ttl_s=60.0)
    ahead = signed_at(now + 100, now + 130)
    with pytest.raises(CommandRefused, match="not valid yet"):
        admit(strict, ahead)
    assert admit(lenient, ahead) == {"member_id": "M-1"}
    stale = signed_at(now - 130, now - 100, nonce="m" * 32)
    with pytest.raises(CommandRefused, match="expired"):
        admit(strict, stale)
    assert admit(lenient, stale) == {"member_id": "M-1"}
    long = signed_at(now, now + 3600, nonce="o" * 32)
    with pytest.raises(CommandRefused, match="validity window"):
        admit(lenient, long)
    assert admit(authority(tmp_path / "c", max_ttl_s=7200.0), long) == {"member_id": "M-1"}


def test_a_nonce_is_refused_again_after_a_restart(tmp_path: Path) -> None:
    payload = signed_command(HUB, TOPIC, {"member_id": "M-1"})
    first = authority(tmp_path)
    assert admit(first, payload) == {"member_id": "M-1"}
    first.nonces.close()
    restarted = authority(tmp_path)
    with pytest.raises(CommandRefused, match="replayed"):
        admit(restarted, payload)


def test_open_commands_need_no_signature_others_do(tmp_path: Path) -> None:
    default = authority(tmp_path / "a")
    assert default.unwrap("store/s1/t1/cmd/ping", "ping", b"{}", False).signed_by is None
    with pytest.raises(CommandRefused, match="unsigned"):
        default.unwrap(TOPIC, "erase-member", b'{"member_id":"M-1"}', False)
    opened = authority(tmp_path / "b", open_commands=("ping", "outbox-stats"))
    assert opened.unwrap("store/s1/t1/cmd/outbox-stats", "outbox-stats", b"{}", False).signed_by is None
    with pytest.raises(CommandRefused, match="retained"):
        opened.unwrap("store/s1/t1/cmd/ping", "ping", b"{}", True)


def test_hub_checks_macs_only_with_the_terminals_registered_key(tmp_path: Path) -> None:
    from agent.trust.keys import load_or_create_terminal_key
    from agent.trust.messages import TerminalSealer

    terminal = load_or_create_terminal_key(tmp_path / "t.key")
    impostor = load_or_create_terminal_key(tmp_path / "i.key")
    body = compact_json({"type": "zone.entered"}).encode()
    genuine = TerminalSealer(terminal, HUB.public, "s1", "t1").seal("store/s1/t1/events/zone.entered", body)
    forged = TerminalSealer(impostor, HUB.public, "s1", "t1").seal("store/s1/t1/events/zone.entered", body)
    registry = TerminalRegistry()
    verifier = HubVerifier([HUB], registry)
    assert verifier.verify("store/s1/t1/events/zone.entered", "s1", "t1", genuine) is Verdict.UNKNOWN_TERMINAL
    registry.add("s1", "t1", terminal.line())
    assert verifier.verify("store/s1/t1/events/zone.entered", "s1", "t1", genuine) is Verdict.VERIFIED
    assert verifier.verify("store/s1/t1/events/zone.entered", "s1", "t1", forged) is Verdict.FORGED
    assert verifier.verify("store/s1/t2/events/zone.entered", "s1", "t1", genuine) is Verdict.FORGED, "topic bound"
    assert verifier.verify("store/s1/t1/events/zone.entered", "s1", "t1", body) is Verdict.UNSIGNED
    assert json.loads(genuine)[MAC].split(":")[0] == HUB.kid


def test_trust_settings_hub_keys_from_a_credential_and_the_terminal_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``trust.hub_keys_credential`` reads hub key lines from a systemd credential; ``trust.terminal_key_file``
    puts the terminal's key where it says (made there on first start, the same key on the next)."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    next_hub = HubPrivateKey.generate()
    (credentials / "hub-keys").write_text(f"# current, then next\n{HUB.public.line()}\n{next_hub.public.line()}\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    key_file = tmp_path / "keys" / "terminal.key"
    text = config_text(tmp_path / "state", f"trust: {{hub_keys_credential: hub-keys, terminal_key_file: {key_file}}}\n")
    config = parse_config(text, base_dir=tmp_path)
    trust = load_trust(config, tmp_path / "state")
    try:
        assert [k.kid for k in trust.hub_keys] == [HUB.kid, next_hub.kid]
        assert key_file.is_file() and (key_file.stat().st_mode & 0o777) == 0o600
        first = trust.terminal_key.line()
        assert trust.seal("t", b"{}") != b"{}", "with a hub key, everything published carries a MAC"
    finally:
        trust.close()
    again = load_trust(config, tmp_path / "state")
    try:
        assert again.terminal_key.line() == first
    finally:
        again.close()
    (credentials / "hub-keys").write_text("not a key\n")
    with pytest.raises(Exception, match="hub keys credential, line 1"):
        load_trust(config, tmp_path / "state")
    with pytest.raises(TrustKeyError, match=r"hub\.pub line"):
        from agent.trust.keys import HubPublicKey

        HubPublicKey.parse("store-agent-hub-v1 only-one-part")
