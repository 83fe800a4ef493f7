"""The hub's and the terminals' keys: generation, files, key ids, and the per-terminal MAC key.

The hub has an Ed25519 key (it signs commands and acks) and an X25519 key (with each terminal's X25519 key it
derives that terminal's MAC key). A terminal has one X25519 key, made at its first start and kept in its state
directory (0600), or given as a systemd credential. Public keys travel as one text line, e.g.
``store-agent-hub-v1 <ed25519> <x25519>`` and ``store-agent-terminal-v1 <x25519>`` (base64url, raw bytes);
the key id is the first 16 hex digits of the SHA-256 of the public key's raw bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.trust.envelope import b64, unb64

HUB_TAG = "store-agent-hub-v1"
TERMINAL_TAG = "store-agent-terminal-v1"
_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw
_RAW_PRIV = serialization.PrivateFormat.Raw
_NONE = serialization.NoEncryption()


class TrustKeyError(ValueError):
    """A key file or line is missing or malformed; the message names it."""


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class HubPublicKey:
    """What a terminal knows of the hub: the key that signs commands and acks, and the one MACs are derived with."""

    signing: Ed25519PublicKey
    agreement: X25519PublicKey

    @property
    def kid(self) -> str:
        return key_id(self.signing.public_bytes(_RAW, _RAW_PUB))

    def line(self) -> str:
        signing, agreement = self.signing.public_bytes(_RAW, _RAW_PUB), self.agreement.public_bytes(_RAW, _RAW_PUB)
        return f"{HUB_TAG} {b64(signing)} {b64(agreement)}"

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.signing.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    @staticmethod
    def parse(line: str, where: str = "hub key") -> HubPublicKey:
        parts = line.split()
        if len(parts) != 3 or parts[0] != HUB_TAG:
            raise TrustKeyError(f"{where}: expected '{HUB_TAG} <ed25519> <x25519>' (the hub.pub line)")
        try:
            return HubPublicKey(
                Ed25519PublicKey.from_public_bytes(unb64(parts[1])), X25519PublicKey.from_public_bytes(unb64(parts[2]))
            )
        except ValueError as exc:
            raise TrustKeyError(f"{where}: not a valid public key ({exc})") from None


@dataclass(frozen=True)
class HubPrivateKey:
    """The hub's secret half (the hub tool's ``--key`` file)."""

    signing: Ed25519PrivateKey
    agreement: X25519PrivateKey

    @staticmethod
    def generate() -> HubPrivateKey:
        return HubPrivateKey(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    @property
    def public(self) -> HubPublicKey:
        return HubPublicKey(self.signing.public_key(), self.agreement.public_key())

    @property
    def kid(self) -> str:
        return self.public.kid

    def sign(self, data: bytes) -> bytes:
        return self.signing.sign(data)

    def text(self) -> str:
        raw = self.signing.private_bytes(_RAW, _RAW_PRIV, _NONE) + self.agreement.private_bytes(_RAW, _RAW_PRIV, _NONE)
        return f"{HUB_TAG}-private {b64(raw)}\n"

    @staticmethod
    def parse(text: str, where: str = "hub private key") -> HubPrivateKey:
        parts = text.split()
        if len(parts) != 2 or parts[0] != f"{HUB_TAG}-private":
            raise TrustKeyError(f"{where}: not a hub private key file (made by `store-agent hub keygen`)")
        raw = unb64(parts[1])
        if len(raw) != 64:
            raise TrustKeyError(f"{where}: wrong key length")
        return HubPrivateKey(
            Ed25519PrivateKey.from_private_bytes(raw[:32]), X25519PrivateKey.from_private_bytes(raw[32:])
        )


@dataclass(frozen=True)
class TerminalKey:
    """A terminal's X25519 key pair."""

    private: X25519PrivateKey

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(_RAW, _RAW_PUB)

    @property
    def kid(self) -> str:
        return key_id(self.public_raw)

    def line(self) -> str:
        return terminal_line(self.private.public_key())

    def mac_key(self, hub: HubPublicKey, store_id: str, terminal_id: str) -> bytes:
        return derive_mac_key(self.private.exchange(hub.agreement), store_id, terminal_id)


def terminal_line(public: X25519PublicKey) -> str:
    """A terminal's public key as one text line (what `store-agent keys show` prints for the hub)."""
    return f"{TERMINAL_TAG} {b64(public.public_bytes(_RAW, _RAW_PUB))}"


def parse_terminal_public(line: str, where: str = "terminal key") -> X25519PublicKey:
    parts = line.split()
    if len(parts) != 2 or parts[0] != TERMINAL_TAG:
        raise TrustKeyError(f"{where}: expected '{TERMINAL_TAG} <x25519>' (from `store-agent keys show`)")
    try:
        return X25519PublicKey.from_public_bytes(unb64(parts[1]))
    except ValueError as exc:
        raise TrustKeyError(f"{where}: not a valid public key ({exc})") from None


def derive_mac_key(shared_secret: bytes, store_id: str, terminal_id: str) -> bytes:
    """HKDF-SHA256 of the X25519 shared secret, bound to the store and terminal it is for."""
    info = f"store-agent event mac v1|{store_id}|{terminal_id}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared_secret)


def hub_mac_key(hub: HubPrivateKey, terminal_public: X25519PublicKey, store_id: str, terminal_id: str) -> bytes:
    """The hub's side of :meth:`TerminalKey.mac_key`: the same key, from the other two halves."""
    return derive_mac_key(hub.agreement.exchange(terminal_public), store_id, terminal_id)


def mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def load_or_create_terminal_key(path: Path) -> TerminalKey:
    """The terminal's key from ``path``, made there (0600, directory 0700) on first use."""
    if path.exists():
        return parse_terminal_private(_read(path), str(path))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = TerminalKey(X25519PrivateKey.generate())
    raw = key.private.private_bytes(_RAW, _RAW_PRIV, _NONE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(f"{TERMINAL_TAG}-private {b64(raw)}\n")
        f.flush()
        os.fsync(f.fileno())
    return key


def parse_terminal_private(text: str, where: str) -> TerminalKey:
    parts = text.split()
    if len(parts) != 2 or parts[0] != f"{TERMINAL_TAG}-private":
        raise TrustKeyError(f"{where}: not a terminal key file (made by the agent at its first start)")
    try:
        return TerminalKey(X25519PrivateKey.from_private_bytes(unb64(parts[1])))
    except ValueError as exc:
        raise TrustKeyError(f"{where}: not a valid private key ({exc})") from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrustKeyError(f"cannot read key file {path}: {exc}") from None


def read_hub_keys(paths: list[Path], credential_text: str | None = None) -> list[HubPublicKey]:
    """The hub public keys a terminal trusts: one per file, and one per line of a credential."""
    keys = [HubPublicKey.parse(_read(p), str(p)) for p in paths]
    if credential_text:
        for i, line in enumerate(credential_text.splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                keys.append(HubPublicKey.parse(line, f"hub keys credential, line {i}"))
    return keys
