"""Scene event types: line crossings, zone presence and dwell, occupancy and queue length.

Track ids are anonymous, random per agent start and local to one camera. When
a track has been identified (face, card, or a re-link carrying such an
identity) the event carries ``identity`` with per-modality and fused
confidence; otherwise ``identity`` is null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from agent.events import EventBody, Retention
from agent.identity.fusion import IdentityClaim


@dataclass(frozen=True, kw_only=True)
class PersonEntered(EventBody):
    """A person crossed a directed line in its ``in`` direction."""

    TYPE: ClassVar[str] = "person.entered"
    RETENTION: ClassVar[Retention] = Retention.NORMAL
    camera: str
    line: str
    track_id: str
    identity: IdentityClaim | None = None


@dataclass(frozen=True, kw_only=True)
class PersonExited(EventBody):
    """A person crossed a directed line in its ``out`` direction."""

    TYPE: ClassVar[str] = "person.exited"
    RETENTION: ClassVar[Retention] = Retention.NORMAL
    camera: str
    line: str
    track_id: str
    identity: IdentityClaim | None = None


@dataclass(frozen=True, kw_only=True)
class ZoneEntered(EventBody):
    """A person has been inside a zone for the configured number of frames."""

    TYPE: ClassVar[str] = "zone.entered"
    RETENTION: ClassVar[Retention] = Retention.NORMAL
    camera: str
    zone: str
    track_id: str
    identity: IdentityClaim | None = None


@dataclass(frozen=True, kw_only=True)
class ZoneLeft(EventBody):
    """A person left a zone (or their track ended inside it); ``dwell_s`` is the time spent inside."""

    TYPE: ClassVar[str] = "zone.left"
    RETENTION: ClassVar[Retention] = Retention.NORMAL
    camera: str
    zone: str
    track_id: str
    dwell_s: float
    track_ended: bool
    identity: IdentityClaim | None = None


@dataclass(frozen=True, kw_only=True)
class ZoneOccupancy(EventBody):
    """How many people are in a zone: sent on change (rate-limited) and as a periodic heartbeat."""

    TYPE: ClassVar[str] = "zone.occupancy"
    RETENTION: ClassVar[Retention] = Retention.TELEMETRY
    camera: str
    zone: str
    count: int
    reason: str  # "change" or "periodic"


@dataclass(frozen=True, kw_only=True)
class QueueLength(EventBody):
    """People waiting in a queue zone (inside for at least the queue's minimum wait)."""

    TYPE: ClassVar[str] = "queue.length"
    RETENTION: ClassVar[Retention] = Retention.NORMAL
    camera: str
    zone: str
    length: int
    longest_wait_s: float
