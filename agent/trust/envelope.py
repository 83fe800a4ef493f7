"""How a signature or MAC rides in a JSON payload: a last member appended to the exact bytes it covers.

The authenticated bytes are ``topic + "\\n" + body``, where ``body`` is the compact JSON object as it was
produced; the payload on the wire is ``body`` with ``,"sig":"<kid>:<value>"`` (hub signatures) or
``,"mac":"<kid>:<value>"`` (terminal MACs) inserted before its closing brace. A verifier strips that suffix to
get ``body`` back byte for byte, so neither side has to canonicalise JSON, and the topic in the covered bytes
stops a message signed for one terminal from being replayed onto another's topic.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

#: The member names: ``sig`` for hub signatures (Ed25519), ``mac`` for terminal MACs (HMAC-SHA256).
SIG = "sig"
MAC = "mac"
_SUFFIX = re.compile(rb'(,?)"(sig|mac)":"([A-Za-z0-9_-]{1,64}):([A-Za-z0-9_-]{16,128})"\}$')


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def covered(topic: str, body: bytes) -> bytes:
    """The bytes an authenticator covers: the topic, a newline, the body."""
    return topic.encode("utf-8") + b"\n" + body


def attach(body: bytes, member: str, kid: str, value: bytes) -> bytes:
    """``body`` (a compact JSON object) with the authenticator appended as its last member."""
    if not body.endswith(b"}"):
        raise ValueError("only a JSON object can carry an authenticator")
    # only the closing brace goes: a body ending in an empty object ({"x":{}}) still has members before it
    separator = b"" if body[:-1].rstrip().endswith(b"{") else b","
    return body[:-1] + separator + f'"{member}":"{kid}:{b64(value)}"'.encode("ascii") + b"}"


@dataclass(frozen=True)
class Authenticated:
    """A payload split into the body it covers and its authenticator."""

    body: bytes
    member: str
    kid: str
    value: bytes


def split(payload: bytes) -> Authenticated | None:
    """The body and authenticator of a payload, or None when it carries none (or a malformed one)."""
    match = _SUFFIX.search(payload)
    if match is None:
        return None
    comma, member, kid, value = match.groups()
    body = payload[: match.start()] + b"}"
    if not comma and not body[:-1].rstrip().endswith(b"{"):
        return None
    try:
        raw = unb64(value.decode("ascii"))
    except ValueError:
        return None
    return Authenticated(body, member.decode("ascii"), kid.decode("ascii"), raw)
