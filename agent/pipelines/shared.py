"""What pipelines share, as one typed object built before any pipeline (so build order never matters).

Pipelines do not import each other. Where one pipeline's output feeds
another's (a face identifies the person track the people pipeline follows, a
person's wrists tell the product pipeline where to look, the member at the
terminal gives a spoken request its ``member_id``) they meet here, each link
typed by a Protocol. The runtime (``agent.runtime.wiring``) builds the
concrete objects from the store config and closes them after the pipelines.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from drivers.base import DeviceOptions
from drivers.registry import DeviceKind

if TYPE_CHECKING:
    from agent.identity.cards import CardIdentity
    from agent.identity.fusion import IdentityClaim
    from agent.identity.gallery import Gallery
    from agent.pipelines.people.reid import LostMember, Relink, TrackSignature
    from agent.pipelines.tracks import PersonTrack

Box = tuple[float, float, float, float]


class MemberPresence(Protocol):
    """The member identified at this terminal lately: the face pipeline writes, speech (and others) read."""

    def seen(self, member_id: str, mono_s: float | None = None) -> None: ...

    def current(self) -> str | None: ...


class TrackIdentities(Protocol):
    """Who each person track is (identity fusion): face and card readers assign, the people pipeline reads."""

    def assign_identity(
        self, camera: str, track_id: str, member_id: str, modality: str, confidence: float
    ) -> IdentityClaim: ...

    def track_at(self, camera: str, x: float, y: float) -> str | None: ...

    def publish_tracks(self, camera: str, boxes: dict[str, Box]) -> None: ...

    def identity(self, camera: str, track_id: str) -> IdentityClaim | None: ...

    def member_of(self, camera: str, track_id: str) -> str | None: ...

    def relink(
        self, old: tuple[str, str], new: tuple[str, str], evidence: dict[str, float]
    ) -> IdentityClaim | None: ...

    def forget(self, camera: str, track_id: str) -> None: ...


class PersonTrackInbox(Protocol):
    """People tracks per camera: the people pipeline offers each frame's tracks, the product pipeline takes them."""

    def offer_tracks(self, camera: str, wall_time: float, tracks: Sequence[PersonTrack]) -> None: ...

    def take(self, camera: str) -> tuple[float, tuple[PersonTrack, ...]] | None: ...


class ReidStore(Protocol):
    """Lost tracks of identified members, kept briefly so a new track can be re-linked to them."""

    def add_lost(self, lost: LostMember) -> None: ...

    def expire(self, now: float) -> list[LostMember]: ...

    def pending(self) -> bool: ...

    def match(
        self, camera: str, signature: TrackSignature, position: tuple[float, float], now: float
    ) -> Relink | None: ...


class FrameTap(Protocol):
    """The newest frame of each face camera, for enrolment at a kiosk (``enroll-member`` with ``camera``)."""

    def put(self, camera: str, seq: int, image: npt.NDArray[np.uint8], captured_s: float | None = None) -> None: ...

    def cameras(self) -> list[str]: ...

    def collect(self, camera: str, count: int, timeout_s: float) -> list[npt.NDArray[np.uint8]]: ...

    def stream(self, camera: str, timeout_s: float) -> Iterator[tuple[float, npt.NDArray[np.uint8]]]: ...


@dataclass(frozen=True)
class Devices:
    """The enabled devices of each kind, in config order."""

    by_kind: dict[DeviceKind, tuple[DeviceOptions, ...]] = field(default_factory=dict)

    def names(self, kind: DeviceKind) -> list[str]:
        return [o.name for o in self.by_kind.get(kind, ())]

    def options(self, kind: DeviceKind) -> tuple[DeviceOptions, ...]:
        return self.by_kind.get(kind, ())

    def sources(self, listed: Sequence[str], kind: DeviceKind) -> list[str]:
        """The sources a pipeline reads: those it lists, or every enabled device of the kind when it lists none."""
        return list(listed) or sorted(self.names(kind))


@dataclass(frozen=True)
class ModelOptions:
    """Where model files live and how onnxruntime sessions run (``models:`` section)."""

    directory: Path
    providers: tuple[str, ...]
    threads: int


@dataclass(frozen=True)
class PrivacyOptions:
    """What pipelines must honour from ``privacy:``: what may leave the device, how long anonymous ids live."""

    transcripts: bool = False
    face_snapshots: bool = False
    anonymous_track_s: float = 300.0


@dataclass(frozen=True)
class Shared:
    """Everything a pipeline's ``build`` gets besides its own settings."""

    devices: Devices
    models: ModelOptions
    state_dir: Path
    privacy: PrivacyOptions
    presence: MemberPresence
    identities: TrackIdentities
    reid: ReidStore
    frames: FrameTap
    #: The member gallery, opened when the face pipeline is on (commands open their own otherwise).
    gallery: Gallery | None = None
    #: Person tracks for the product pipeline; ``None`` when it is off (the people pipeline then offers nothing).
    tracks: PersonTrackInbox | None = None
    #: Member cards (secret + registry), loaded when a card reader is configured.
    cards: CardIdentity | None = None
    #: Card readers placed beside a camera: reader name -> (camera, pixel point of the person tapping).
    card_placements: dict[str, tuple[str, tuple[float, float]]] = field(default_factory=dict)
    #: The store's product names (the catalogue's, when product recognition is on): words speech should expect.
    product_names: tuple[str, ...] = ()
