"""The product pipeline: per camera, recognise products in configured zones; per scanner, tie scans in.

One :class:`ProductService` per build owns the embedder, the catalogue index
and the scan ledger; the camera and scanner stages share it (people tracks
arrive through ``Shared.tracks``). The index is built (embedding only photos
not in the cache) in ``warm_up``, before the agent reports ready.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from agent import startup
from agent.catalog import BuiltCatalog, SearchResult, build_index
from agent.events import EventBody
from agent.pipelines.product.events import Candidate, ProductInterest, ProductRecognized
from agent.pipelines.product.interest import ShelfActivity, ShelfDwell
from agent.pipelines.product.ledger import Scan, ScanLedger, Sighting
from agent.pipelines.product.settings import ProductSettings, ProductZone
from agent.pipelines.product.voting import Decision, ZoneVoter
from agent.pipelines.stage import Stage
from agent.pipelines.tracks import PersonTrack
from drivers.base import Frame, SerialRead

if TYPE_CHECKING:
    from agent.pipelines.shared import ModelOptions, PersonTrackInbox, Shared
    from models.product import ProductEmbedder

logger = logging.getLogger(__name__)

#: Tracks older than this no longer count as "the people pipeline is on" for a camera.
TRACKS_FRESH_S = 2.0


class ProductService:
    """What every product stage shares; built once, used from several worker threads."""

    def __init__(
        self, settings: ProductSettings, models: ModelOptions, state_dir: Path, inbox: PersonTrackInbox | None
    ) -> None:
        self.settings = settings
        self.models = models
        self.state_dir = state_dir
        self.ledger = ScanLedger(settings.mismatch_window_s)
        self.inbox = inbox
        self.embedder: ProductEmbedder | None = None
        self.built: BuiltCatalog | None = None
        self._lock = threading.Lock()

    def ensure_ready(self) -> tuple[ProductEmbedder, BuiltCatalog]:
        with self._lock:
            if self.embedder is None or self.built is None:
                from models.product import ProductEmbedder

                self.embedder = ProductEmbedder.load(
                    self.models.directory,
                    list(self.models.providers),
                    self.models.threads,
                    views=self.settings.views,
                    centre_crop=self.settings.centre_crop,
                    input_size=self.settings.input_size,
                )
                cache_dir = self.settings.cache_dir or self.state_dir / "catalog"
                self.built = build_index(
                    Path(self.settings.catalog_dir),
                    Path(cache_dir),
                    self.embedder,
                    progress=lambda done, total, _: startup.report(f"catalogue {done}/{total} photos"),
                    whiten=self.settings.whitening,
                )
            return self.embedder, self.built


@dataclass
class ZoneState:
    zone: ProductZone
    voter: ZoneVoter
    next_due: float = 0.0
    held_reported: str | None = None
    activity: ShelfActivity | None = None
    dwell: ShelfDwell | None = None


def crop(image: npt.NDArray[np.uint8], box: tuple[float, float, float, float]) -> npt.NDArray[np.uint8]:
    h, w = image.shape[:2]
    x0, y0 = int(box[0] * w), int(box[1] * h)
    x1, y1 = max(x0 + 1, round(box[2] * w)), max(y0 + 1, round(box[3] * h))
    return image[y0:y1, x0:x1]


def hand_box(track: PersonTrack, hand: tuple[float, float], scale: float = 0.35) -> tuple[float, float, float, float]:
    """A square-ish region around a wrist, sized from the person's height (a held product's scale)."""
    half = scale * (track.box[3] - track.box[1]) / 2
    return (max(0.0, hand[0] - half), max(0.0, hand[1] - half), min(1.0, hand[0] + half), min(1.0, hand[1] + half))


class ProductCameraStage(Stage[Frame]):
    SHED_STEPS = ("product.fps",)

    def __init__(self, camera: str, settings: ProductSettings, service: ProductService) -> None:
        super().__init__("product", camera)
        self.settings = settings
        self.service = service
        zones = [z for z in settings.zones if z.camera == camera] or [ProductZone(name=camera, camera=camera)]
        self.zones = [ZoneState(zone=z, voter=self._voter()) for z in zones]
        for state in self.zones:
            if state.zone.kind == "shelf":
                state.activity = ShelfActivity(camera, state.zone.name, settings.interest_dwell_s)
                state.dwell = ShelfDwell(camera, state.zone.name, state.zone.box, settings.interest_dwell_s)
        self.hand_voters: dict[str, ZoneVoter] = {}
        self._hand_used: dict[str, float] = {}  # when each hand voter last voted
        self.tracks_at = -1e18
        self._frames = 0

    @property
    def _vote_max_age_s(self) -> float:
        return max(2.0, 2.0 * self.settings.vote_frames / self.settings.fps)

    def _voter(self) -> ZoneVoter:
        s = self.settings
        return ZoneVoter(
            s.min_score, s.min_margin, s.vote_frames, s.vote_min, s.repeat_after_s, self._vote_max_age_s, s.min_cosine
        )

    def _forget_idle_hands(self, now: float) -> None:
        """Drop the voters of tracks that stopped voting: after this long their votes have aged out and a repeat
        would be reported anyway (track ids never come back, so without this they would pile up)."""
        idle_s = max(self.settings.repeat_after_s, self._vote_max_age_s)
        for track_id in [t for t, used in self._hand_used.items() if now - used > idle_s]:
            del self.hand_voters[track_id], self._hand_used[track_id]

    def warm_up(self) -> None:
        self.service.ensure_ready()

    def process(self, item: Frame) -> Iterable[EventBody]:
        embedder, built = self.service.ensure_ready()
        now = item.capture.wall_time
        events: list[EventBody] = list(self.service.ledger.tick(now))
        offered = self.service.inbox.take(self.source) if self.service.inbox is not None else None
        tracks: tuple[PersonTrack, ...] = ()
        if offered is not None:
            self.tracks_at, tracks = offered
            self._forget_idle_hands(now)
        tracks_on = now - self.tracks_at <= TRACKS_FRESH_S

        self._frames += 1
        shedding = "product.fps" in self.shedding  # overload: zones at half the rate, hands on every 2nd frame
        fps = self.settings.fps / (2.0 if shedding else 1.0)
        due = [z for z in self.zones if now >= z.next_due]
        regions: list[tuple[ZoneState | None, tuple[float, float, float, float], PersonTrack | None]]
        regions = [(z, z.zone.box, None) for z in due]
        if not (shedding and self._frames % 2):
            regions += [(None, hand_box(t, h), t) for t in tracks for h in t.hands]
        if regions:
            vectors = embedder.embed([crop(item.image, box) for _, box, _ in regions])
            results = built.index.search(vectors, self.settings.top_k)
            for (state, box, track), result in zip(regions, results, strict=True):
                if state is not None:
                    state.next_due = now + 1.0 / fps
                    events += self._zone_result(state, result, now)
                elif track is not None:
                    events += self._hand_result(track, box, result, now)
        for state in self.zones:
            sku = state.voter.current
            if state.dwell is not None and tracks:
                events += state.dwell.update(now, tracks, sku)
            if state.activity is not None and not tracks_on:
                events += state.activity.update(crop(item.image, state.zone.box), now, sku)
        return events

    def _zone_result(self, state: ZoneState, result: SearchResult, now: float) -> list[EventBody]:
        decision = state.voter.add(result, now)
        if decision is None:
            if state.voter.current is None:
                state.held_reported = None  # the product has gone; a new presence may be reported again
            return []
        zone = state.zone
        events: list[EventBody] = []
        if decision.new:
            events.append(self._recognized(decision, zone.name, now))
            best = decision.result.best
            score = best.score if best else 0.0
            events += self.service.ledger.sighting(Sighting(self.source, zone.name, decision.sku, score, now))
        if state.held_reported != decision.sku:
            state.held_reported = None
        held = zone.kind == "counter" and decision.held_for_s >= self.settings.interest_dwell_s
        if held and state.held_reported is None:
            state.held_reported = decision.sku
            events.append(
                ProductInterest(
                    captured_at=now,
                    trigger="held",
                    camera=self.source,
                    zone=zone.name,
                    dwell_s=round(decision.held_for_s, 3),
                    sku=decision.sku,
                )
            )
        return events

    def _hand_result(
        self, track: PersonTrack, box: tuple[float, float, float, float], result: SearchResult, now: float
    ) -> list[EventBody]:
        voter = self.hand_voters.setdefault(track.track_id, self._voter())
        self._hand_used[track.track_id] = now
        decision = voter.add(result, now)
        if decision is None or not decision.new:
            return []
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        inside = [
            z.zone for z in self.zones if z.zone.box[0] <= cx <= z.zone.box[2] and z.zone.box[1] <= cy <= z.zone.box[3]
        ]
        zone = inside[0].name if inside else None
        return [self._recognized(decision, zone, now, track)]

    def _recognized(
        self, decision: Decision, zone: str | None, now: float, track: PersonTrack | None = None
    ) -> ProductRecognized:
        built = self.service.built
        assert built is not None
        best = decision.result.best
        return ProductRecognized(
            captured_at=now,
            sku=decision.sku,
            name=built.catalog.products[decision.sku].info.name,
            method="vision",
            score=round(best.score if best else 0.0, 4),
            margin=round(decision.result.margin, 4),
            top=tuple(Candidate(sku=m.sku, score=round(m.score, 4)) for m in decision.result.top),
            votes=decision.votes,
            camera=self.source,
            zone=zone,
            track_id=track.track_id if track else None,
            member_id=track.member_id if track else None,
        )


class ProductScannerStage(Stage[SerialRead]):
    """Maps each scanned barcode to its SKU and hands the scan to the ledger for mismatch checks."""

    def __init__(self, scanner: str, service: ProductService) -> None:
        super().__init__("product", scanner)
        self.service = service

    def warm_up(self) -> None:
        self.service.ensure_ready()

    def process(self, item: SerialRead) -> Iterable[EventBody]:
        if item.kind != "barcode":
            return []
        _, built = self.service.ensure_ready()
        now = item.capture.wall_time
        sku = built.catalog.sku_for_barcode(item.value)
        events: list[EventBody] = []
        if sku is None:
            self.logger.info("barcode %s from %s is not in the catalogue", item.value, item.source)
        else:
            events.append(
                ProductRecognized(
                    captured_at=now,
                    sku=sku,
                    name=built.catalog.products[sku].info.name,
                    method="barcode",
                    score=1.0,
                    device=item.source,
                )
            )
        events += self.service.ledger.scan(Scan(item.source, item.value, sku, now))
        return events


def build(settings: ProductSettings, shared: Shared) -> list[Stage[Any]]:
    service = ProductService(settings, shared.models, shared.state_dir, shared.tracks)
    cameras = shared.devices.sources(settings.cameras, "camera")
    stages: list[Stage[Any]] = [ProductCameraStage(camera, settings, service) for camera in cameras]
    stages += [ProductScannerStage(scanner, service) for scanner in settings.scanners]
    return stages
