"""Whether a command from MQTT may run: signed by a hub key this terminal trusts, for this topic, in time, once.

A signed request is the command's JSON object with three more members, then the hub's signature appended
(``agent.trust.envelope``)::

    {"request_id": "r1", "member_id": "M-1", "issued_at": "2026-11-25T10:00:00.000Z",
     "expires_at": "2026-11-25T10:01:00.000Z", "nonce": "2c9f...", "sig": "<hub kid>:<ed25519 signature>"}

The signature covers the topic (so it names the store, the terminal and the command) and every member before
it. Refused, with the reason in the reply: retained messages, unsigned requests for a command that needs a
signature, an unknown or retired key, a bad signature, a request not yet valid or expired (beyond the tolerated
clock skew), a validity window longer than allowed, and a nonce seen before (remembered on disk until expiry).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.trust.envelope import SIG, covered, split
from agent.trust.keys import HubPublicKey
from agent.trust.nonces import NonceStore

#: Request members that carry the authorisation, not the command's arguments.
AUTH_FIELDS = ("issued_at", "expires_at", "nonce")


class CommandRefused(Exception):
    """The request may not run; the message says why (it goes into the reply)."""


@dataclass(frozen=True)
class Verified:
    """A request that passed: its body's bytes (the JSON without the signature) and who signed it."""

    body: bytes
    signed_by: str | None


_FRACTION = re.compile(r"(.*[Tt ]\d\d:\d\d:\d\d)\.(\d+)(.*)")


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 time, also on Python 3.10, whose ``fromisoformat`` takes neither ``Z`` nor fractions of
    other than 3 or 6 digits (JetPack 6 runs the agent on 3.10; the hub may write either form)."""
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    if match := _FRACTION.fullmatch(text):
        text = f"{match[1]}.{match[2][:6].ljust(6, '0')}{match[3]}"
    return datetime.fromisoformat(text)


def _time(request: dict[str, Any], name: str) -> float:
    value = request.get(name)
    if not isinstance(value, str):
        raise CommandRefused(f"a signed request needs {name} (an RFC 3339 time)")
    try:
        return parse_rfc3339(value).timestamp()
    except ValueError:
        raise CommandRefused(f"{name} is not an RFC 3339 time: {value[:40]!r}") from None


class CommandAuthority:
    def __init__(
        self,
        hub_keys: Sequence[HubPublicKey],
        nonces: NonceStore,
        open_commands: Sequence[str] = ("ping",),
        max_ttl_s: float = 600.0,
        clock_skew_s: float = 120.0,
    ) -> None:
        self.keys = {key.kid: key for key in hub_keys}
        self.nonces = nonces
        self.open_commands = frozenset(open_commands)
        self.max_ttl_s = max_ttl_s
        self.clock_skew_s = clock_skew_s

    def unwrap(self, topic: str, name: str, payload: bytes, retained: bool) -> Verified:
        """The request's body when it may be parsed and run; raises :class:`CommandRefused` otherwise.

        The signature is checked here, on the raw bytes; the times and the nonce need the parsed body
        (:meth:`admit`).
        """
        if retained:
            raise CommandRefused(
                "retained command refused: commands must not be retained (clear it with an empty retained message)"
            )
        signed = split(payload)
        if signed is None:
            if name not in self.open_commands:
                raise CommandRefused(f"unsigned: {name} needs the hub's signature (`store-agent hub send`)")
            return Verified(payload, None)
        if signed.member != SIG:
            raise CommandRefused("a command must carry the hub's signature (sig), not a MAC")
        key = self.keys.get(signed.kid)
        if key is None:
            raise CommandRefused(f"signed by key {signed.kid}, which this terminal does not trust (trust.hub_keys)")
        if not key.verify(signed.value, covered(topic, signed.body)):
            raise CommandRefused(f"bad signature (key {signed.kid}): the request or its topic was altered")
        return Verified(signed.body, signed.kid)

    def admit(self, verified: Verified, request: dict[str, Any]) -> dict[str, Any]:
        """The command's arguments, once a signed request is in time and new; raises :class:`CommandRefused`."""
        if verified.signed_by is None:
            if any(field in request for field in AUTH_FIELDS):
                raise CommandRefused(f"{', '.join(AUTH_FIELDS)} are only meaningful in a signed request")
            return request
        issued, expires = _time(request, "issued_at"), _time(request, "expires_at")
        nonce = request.get("nonce")
        if not isinstance(nonce, str) or not 16 <= len(nonce) <= 128:
            raise CommandRefused("a signed request needs a nonce of 16 to 128 characters")
        now = time.time()
        if issued > now + self.clock_skew_s:
            raise CommandRefused(f"not valid yet: issued_at is {issued - now:.0f} s ahead of this terminal's clock")
        if expires < now - self.clock_skew_s:
            raise CommandRefused(f"expired {now - expires:.0f} s ago")
        if expires - issued > self.max_ttl_s or expires < issued:
            raise CommandRefused(f"validity window must be 0 to {self.max_ttl_s:.0f} s (trust.max_command_ttl_s)")
        if not self.nonces.claim(nonce, expires + self.clock_skew_s):
            raise CommandRefused("replayed: this request's nonce was already used")
        return {k: v for k, v in request.items() if k not in AUTH_FIELDS}
