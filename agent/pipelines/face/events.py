"""Events of the face pipeline. None carries an image or an embedding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from agent.events import EventBody, Retention


@dataclass(frozen=True, kw_only=True)
class ShopperIdentified(EventBody):
    """An enrolled, consenting member was recognised (live face, several good frames)."""

    TYPE: ClassVar[str] = "shopper.identified"
    RETENTION: ClassVar[Retention] = Retention.PROTECTED
    DEPRECATED_ALIASES: ClassVar[dict[str, str]] = {"track": "track_id"}  # until schema_version 2
    member_id: str
    confidence: float
    margin: float
    liveness: float
    camera: str
    track_id: str
    frames: int
    modality: str = "face"
    #: Base64 JPEG of the face, only where ``privacy.egress.face_snapshots`` is on.
    snapshot: str | None = None


@dataclass(frozen=True, kw_only=True)
class VisitorSeen(EventBody):
    """Someone not enrolled: a random id for this track only (no template is kept)."""

    TYPE: ClassVar[str] = "visitor.seen"
    RETENTION: ClassVar[Retention] = Retention.NORMAL
    visitor_id: str
    camera: str
    frames: int


@dataclass(frozen=True, kw_only=True)
class SpoofSuspected(EventBody):
    """A face that looks like a photo or a screen; no image is attached."""

    TYPE: ClassVar[str] = "spoof.suspected"
    RETENTION: ClassVar[Retention] = Retention.PROTECTED
    DEPRECATED_ALIASES: ClassVar[dict[str, str]] = {"track": "track_id"}  # until schema_version 2
    camera: str
    track_id: str
    score: float
    frames: int
