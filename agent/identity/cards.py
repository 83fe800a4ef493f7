"""Member cards: a tapped UID becomes a member id (from the registry) or a keyed hash, never the raw UID.

The hash is HMAC-SHA256 of the upper-case hex UID under a per-store secret, so
the hub can count repeat visits of the same unregistered card without learning
its UID, and a UID seen in one store cannot be linked to another store's hash.
The secret comes from an environment variable or a systemd credential, never
from the YAML. The member registry is a file mapping card hashes (not UIDs) to
member ids, so it can be shipped to terminals without exposing card numbers.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from drivers.secrets import SecretError, read_secret

HASH_PREFIX = "hmac-sha256:"
_UID = re.compile(r"^(?:[0-9A-F]{2}){4,10}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
MIN_SECRET_BYTES = 16


class CardIdentityError(ValueError):
    """The secret or the registry is missing or malformed; the message says which and where."""


def card_hash(uid_hex: str, secret: bytes) -> str:
    """The keyed hash of a card UID: 64 lower-case hex digits of HMAC-SHA256(secret, UID as upper-case hex)."""
    uid = uid_hex.strip().upper()
    if not _UID.match(uid):
        raise ValueError("card UID must be 4 to 10 bytes of hex")
    if len(secret) < MIN_SECRET_BYTES:
        raise CardIdentityError(f"card secret must be at least {MIN_SECRET_BYTES} bytes")
    return hmac.new(secret, uid.encode("ascii"), hashlib.sha256).hexdigest()


def load_secret(env: str | None = None, credential: str | None = None) -> bytes:
    """The per-store card secret from ``$env`` or the systemd credential ``credential``."""
    try:
        value = read_secret(env, credential)
    except SecretError as exc:
        raise CardIdentityError(f"card secret: {exc}") from None
    if value is None:
        raise CardIdentityError("card secret: give an environment variable or a systemd credential")
    secret = value.strip().encode("utf-8")
    if len(secret) < MIN_SECRET_BYTES:
        raise CardIdentityError(f"card secret must be at least {MIN_SECRET_BYTES} bytes (got {len(secret)})")
    return secret


def load_registry(path: Path) -> dict[str, str]:
    """Card hash -> member id, from YAML (a mapping) or CSV (columns ``card_hash,member_id``).

    Keys may carry the ``hmac-sha256:`` prefix. Errors name the file and the line
    (CSV) or key (YAML).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CardIdentityError(f"{path}: cannot read member registry ({exc})") from None
    entries: list[tuple[str, object, str]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if reader.fieldnames is None or not {"card_hash", "member_id"} <= set(reader.fieldnames):
            raise CardIdentityError(f"{path}:1: header must name the columns card_hash and member_id")
        for row in reader:
            entries.append((row["card_hash"] or "", row["member_id"], f"{path}:{reader.line_num}"))
    else:
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise CardIdentityError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise CardIdentityError(f"{path}: expected a mapping of card hash to member id")
        entries = [(str(k), v, f"{path}: {str(k)[:20]}...") for k, v in data.items()]
    registry: dict[str, str] = {}
    for key, member, where in entries:
        digest = key.strip().removeprefix(HASH_PREFIX).lower()
        if not _HASH.match(digest):
            raise CardIdentityError(f"{where}: card hash must be 64 hex digits (HMAC-SHA256), not a raw UID")
        if not isinstance(member, str | int) or not str(member).strip():
            raise CardIdentityError(f"{where}: member id must be a non-empty string")
        if digest in registry and registry[digest] != str(member).strip():
            raise CardIdentityError(f"{where}: card hash listed twice with different members")
        registry[digest] = str(member).strip()
    return registry


@dataclass(frozen=True)
class CardIdentity:
    """Turns a UID into what may leave the device: a member id, else the keyed hash."""

    secret: bytes
    registry: dict[str, str]
    #: Cards the store shares through the hub (``identity.sync``), looked up after the registry file.
    shared: Callable[[str], str | None] | None = None

    def resolve(self, uid_hex: str) -> tuple[str | None, str]:
        """``(member_id or None, card_hash)`` for a tapped UID."""
        digest = card_hash(uid_hex, self.secret)
        member = self.registry.get(digest)
        if member is None and self.shared is not None:
            member = self.shared(digest)
        return member, digest
