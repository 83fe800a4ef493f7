"""Authenticating messages on both sides: the terminal MACs what it sends and checks the hub's signatures on
acks; the hub signs commands and acks and checks each terminal's MACs.

Terminal-side objects get only public hub keys; the hub side holds the hub's private key and the public keys of
its terminals (``terminals.yaml``, or pinned on first sight with ``monitor --tofu``).
"""

from __future__ import annotations

import enum
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.events import compact_json, iso_time
from agent.trust.envelope import MAC, SIG, attach, covered, split
from agent.trust.keys import (
    HubPrivateKey,
    HubPublicKey,
    TerminalKey,
    TrustKeyError,
    hub_mac_key,
    mac,
    parse_terminal_public,
    terminal_line,
)
from drivers.compat import StrEnum


class TerminalSealer:
    """Appends the terminal's MAC to what it publishes (events, status, health, replies)."""

    def __init__(self, key: TerminalKey, hub: HubPublicKey, store_id: str, terminal_id: str) -> None:
        self.kid = hub.kid
        self._key = key.mac_key(hub, store_id, terminal_id)

    def seal(self, topic: str, body: bytes) -> bytes:
        return attach(body, MAC, self.kid, mac(self._key, covered(topic, body)))


class AckCheck(enum.Enum):
    OK = "ok"
    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown key"
    BAD_SIGNATURE = "bad signature"
    MALFORMED = "malformed"


def check_hub_signature(keys: dict[str, HubPublicKey], topic: str, payload: bytes) -> tuple[AckCheck, bytes]:
    """Whether ``payload`` on ``topic`` carries a valid signature of a trusted hub key; the body it covers."""
    signed = split(payload)
    if signed is None:
        return AckCheck.UNSIGNED, payload
    if signed.member != SIG:
        return AckCheck.MALFORMED, payload
    key = keys.get(signed.kid)
    if key is None:
        return AckCheck.UNKNOWN_KEY, payload
    if not key.verify(signed.value, covered(topic, signed.body)):
        return AckCheck.BAD_SIGNATURE, payload
    return AckCheck.OK, signed.body


# --- the hub side ------------------------------------------------------------------------------------------


def sign(hub: HubPrivateKey, topic: str, body: bytes) -> bytes:
    """``body`` (compact JSON) with the hub's signature over the topic and the body appended."""
    return attach(body, SIG, hub.kid, hub.sign(covered(topic, body)))


def signed_command(hub: HubPrivateKey, topic: str, request: dict[str, Any], ttl_s: float = 60.0) -> bytes:
    """A command request as the hub sends it: the arguments plus validity window and nonce, signed."""
    now = time.time()
    body = {**request, "issued_at": iso_time(now), "expires_at": iso_time(now + ttl_s), "nonce": secrets.token_hex(16)}
    return sign(hub, topic, compact_json(body).encode())


def signed_ack(hub: HubPrivateKey, topic: str, event_ids: Sequence[str]) -> bytes:
    body = {"event_ids": list(event_ids), "issued_at": iso_time(time.time())}
    return sign(hub, topic, compact_json(body).encode())


class Verdict(StrEnum):
    """What the hub concluded about a terminal's message."""

    VERIFIED = "verified"
    UNSIGNED = "unsigned"  # no MAC: a terminal without the hub's key configured, or a forger
    FORGED = "forged"  # a MAC that does not verify: not from that terminal, or altered
    UNKNOWN_TERMINAL = "unknown terminal"  # no public key for the terminal (not registered, not pinned)


@dataclass
class TerminalRegistry:
    """The hub's list of its terminals' public keys: ``{store_id: {terminal_id: "store-agent-terminal-v1 ..."}}``."""

    keys: dict[tuple[str, str], X25519PublicKey] = field(default_factory=dict)
    path: Path | None = None

    @staticmethod
    def load(path: Path) -> TerminalRegistry:
        registry = TerminalRegistry(path=path)
        if not path.exists():
            return registry
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise TrustKeyError(f"{path}: cannot read the terminal registry ({exc})") from None
        if not isinstance(data, dict):
            raise TrustKeyError(f"{path}: expected a mapping of store id to terminal id to key line")
        for store, terminals in data.items():
            if not isinstance(terminals, dict):
                raise TrustKeyError(f"{path}: {store}: expected a mapping of terminal id to key line")
            for terminal, line in terminals.items():
                registry.keys[(str(store), str(terminal))] = parse_terminal_public(
                    str(line), f"{path}: {store}.{terminal}"
                )
        return registry

    def add(self, store: str, terminal: str, line: str) -> None:
        """Register (pin) a terminal's key and write the file."""
        self.keys[(store, terminal)] = parse_terminal_public(line, f"key of {store}/{terminal}")
        if self.path is not None:
            data: dict[str, dict[str, str]] = {}
            for (s, t), key in sorted(self.keys.items()):
                data.setdefault(s, {})[t] = terminal_line(key)
            self.path.write_text(yaml.safe_dump(data, sort_keys=True), encoding="utf-8")


class HubVerifier:
    """Checks terminals' MACs with the hub's private keys and the registry of terminal keys."""

    def __init__(self, hub_keys: Sequence[HubPrivateKey], registry: TerminalRegistry) -> None:
        self.hubs = {key.kid: key for key in hub_keys}
        self.registry = registry
        self._derived: dict[tuple[str, str, str], bytes] = {}

    def verify(self, topic: str, store: str, terminal: str, payload: bytes) -> Verdict:
        signed = split(payload)
        if signed is None or signed.member != MAC:
            return Verdict.UNSIGNED
        public = self.registry.keys.get((store, terminal))
        if public is None:
            return Verdict.UNKNOWN_TERMINAL
        hub = self.hubs.get(signed.kid)
        if hub is None:
            return Verdict.FORGED
        cache = (signed.kid, store, terminal)
        key = self._derived.get(cache)
        if key is None:
            key = self._derived[cache] = hub_mac_key(hub, public, store, terminal)
        if not hmac.compare_digest(mac(key, covered(topic, signed.body)), signed.value):
            return Verdict.FORGED
        return Verdict.VERIFIED

    def forget(self, store: str, terminal: str) -> None:
        self._derived = {k: v for k, v in self._derived.items() if k[1:] != (store, terminal)}
