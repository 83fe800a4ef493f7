"""Events of serial sensors: a barcode scan, a member card tap (never the raw card UID)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from agent.events import EventBody, Retention
from agent.identity.cards import HASH_PREFIX, CardIdentity


@dataclass(frozen=True, kw_only=True)
class BarcodeScanned(EventBody):
    """A barcode scanner read one code."""

    TYPE: ClassVar[str] = "barcode.scanned"
    RETENTION: ClassVar[Retention] = Retention.NORMAL
    device: str
    code: str
    symbology: str | None = None


@dataclass(frozen=True, kw_only=True)
class CardTapped(EventBody):
    """A member card was presented to a reader: the member when registered, else the card's keyed hash.

    ``card_hash`` is absent when the member is known, so a member's card number
    (even hashed) does not travel with their id.
    """

    TYPE: ClassVar[str] = "card.tapped"
    RETENTION: ClassVar[Retention] = Retention.PROTECTED
    device: str
    member_id: str | None = None
    card_hash: str | None = None

    def __post_init__(self) -> None:
        if (self.member_id is None) == (self.card_hash is None):
            raise ValueError("card.tapped carries exactly one of member_id or card_hash")


def card_tapped(device: str, uid_hex: str, identity: CardIdentity, captured_at: float) -> CardTapped:
    """The event for one tap (the raw UID is used here and dropped)."""
    member, digest = identity.resolve(uid_hex)
    if member is not None:
        return CardTapped(captured_at=captured_at, device=device, member_id=member)
    return CardTapped(captured_at=captured_at, device=device, card_hash=HASH_PREFIX + digest)
