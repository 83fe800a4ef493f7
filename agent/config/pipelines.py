"""The ``pipelines:`` section: one model per pipeline, each with ``enabled`` and the sources it reads.

Each pipeline's settings live in its own class here so they can grow
independently; ``check_references`` makes sure every named source exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.speech.spec import IntentSpec, RecognizerSettings, VadSettings
from drivers.base import ConfigPath

if TYPE_CHECKING:
    from agent.config.schema import StoreConfig


class PipelineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = Field(False, description="Run this pipeline.")


class MotionPipeline(PipelineSettings):
    """Frame-difference motion detection: cheap, needs no model, useful to check a camera works."""

    cameras: list[str] = Field(default_factory=list, description="Cameras to watch; empty means every camera.")
    min_area: float = Field(
        0.01, gt=0, lt=1, description="Smallest moving area, as a fraction of the frame, that counts."
    )
    threshold: int = Field(25, ge=1, le=255, description="Per-pixel grey-level change that counts as motion.")
    end_after_s: float = Field(2.0, gt=0, description="Motion ends after this long without any.")
    downscale_width: int = Field(
        320, ge=64, le=1920, description="Frames are shrunk to this width before differencing."
    )


class FacePipeline(PipelineSettings):
    """Face identification of consenting members (detection, liveness, embedding, gallery)."""

    cameras: list[str] = Field(default_factory=list, description="Cameras to run face identification on.")
    embedder: Literal["sface", "mobilefacenet"] = Field(
        "sface", description="Embedding model; SFace has fewer false accepts at the same recall (docs/face.md)."
    )
    detector_model: str = Field(
        "face_detection_yunet_2023mar_dynamic",
        description="Manifest name of the YuNet detector (the dynamic-shape file runs at detection_max_side).",
    )
    detection_max_side: int = Field(
        320, ge=160, le=1920, description="Frames are shrunk to this longer side for detection (dynamic YuNet)."
    )
    detection_threshold: float = Field(0.8, gt=0, lt=1, description="Minimum YuNet score for a face.")
    match_threshold: float = Field(0.40, gt=-1, lt=1, description="Minimum cosine similarity to a member's template.")
    match_margin: float = Field(0.05, ge=0, lt=1, description="Best member must beat the next member by this much.")
    liveness_threshold: float = Field(
        0.5, ge=0, le=1, description="Minimum fused MiniFASNet real score (mean over frames)."
    )
    min_face_px: float = Field(48, ge=16, description="Faces smaller than this (shorter box side, pixels) are ignored.")
    min_sharpness: float = Field(30, ge=0, description="Minimum Laplacian variance of the aligned face crop.")
    max_yaw: float = Field(0.45, gt=0, le=1, description="Largest head turn (nose offset in eye distances).")
    min_frames: int = Field(3, ge=1, le=50, description="Good frames a face needs before anything is decided.")
    best_frames: int = Field(5, ge=1, le=50, description="Best-quality frames whose embeddings are averaged.")
    track_timeout_s: float = Field(2.0, gt=0, description="A face unseen this long ends its track.")
    member_window_s: float = Field(
        30.0, gt=0, description="How long an identified member counts as 'at this terminal' (speech member_id)."
    )
    key_env: str | None = Field(
        "STORE_AGENT_GALLERY_KEY", pattern=r"^[A-Z_][A-Z0-9_]*$", description="Env var holding the gallery key."
    )
    key_credential: str | None = Field(
        "gallery-key", pattern=r"^[A-Za-z0-9_.-]+$", description="systemd credential (LoadCredential=) holding the key."
    )
    key_file: Path | None = Field(None, description="Key file readable by its owner only (0400); never the key itself.")


class PeopleZone(BaseModel):
    """A polygon zone; a person is in it when their anchor point (feet by default) is inside."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Zone name used in events.")
    points: list[tuple[float, float]] = Field(min_length=3, description="Polygon corners [[x, y], ...] in order.")
    queue: bool = Field(False, description="Also report queue.length for this zone.")
    queue_min_wait_s: float = Field(3.0, ge=0, description="Time inside before a person counts as queueing.")


class PeopleLine(BaseModel):
    """A directed counting line from A to B: crossing from its left to its right (on screen) is 'in'."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Line name used in events.")
    points: list[tuple[float, float]] = Field(min_length=2, max_length=2, description="[[xA, yA], [xB, yB]].")
    invert: bool = Field(False, description="Swap in and out.")


class PeopleScene(BaseModel):
    """Zones and lines of one camera."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    normalized: bool = Field(True, description="Coordinates are fractions of the frame (0..1); false: pixels.")
    anchor: Literal["bottom", "centre"] = Field("bottom", description="Point of a person box tested: feet or centre.")
    zones: list[PeopleZone] = Field(default_factory=list, description="Polygon zones.")
    lines: list[PeopleLine] = Field(default_factory=list, description="Directed counting lines.")

    @model_validator(mode="after")
    def _unique_names(self) -> PeopleScene:
        names = [z.name for z in self.zones] + [ln.name for ln in self.lines]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"zone/line names must be unique per camera; repeated: {', '.join(dupes)}")
        return self


class PeoplePipeline(PipelineSettings):
    """Person detection, tracking, zones, lines, dwell and queues; gait/appearance re-link of identified members."""

    cameras: list[str] = Field(default_factory=list, description="Cameras to count and track people on.")
    scenes: dict[str, PeopleScene] = Field(
        default_factory=dict, description="Zones and lines per camera name (a camera without a scene is only tracked)."
    )
    detect_every: int = Field(2, ge=1, le=30, description="Run the detector every N frames; track in between.")
    score_threshold: float = Field(0.1, gt=0, lt=1, description="Lowest detector score kept (for the second stage).")
    new_track_score: float = Field(0.6, gt=0, lt=1, description="Detector score needed to start a track.")
    lost_track_s: float = Field(3.0, gt=0, description="How long a lost track may be re-associated by motion.")
    enter_frames: int = Field(3, ge=1, le=100, description="Frames inside (or outside) before zone entry (or exit).")
    line_deadband: float = Field(
        0.015,
        ge=0,
        lt=0.2,
        description="Band either side of a line, as a fraction of frame height, that absorbs jitter.",
    )
    occupancy_min_interval_s: float = Field(5.0, ge=0, description="Least time between two zone.occupancy changes.")
    occupancy_every_s: float = Field(60.0, ge=0, description="Periodic zone.occupancy heartbeat; 0 turns it off.")
    relink_window_s: float = Field(
        30.0, ge=0, description="How long an identified member's lost track can be re-linked."
    )
    relink_threshold: float = Field(0.6, gt=0, lt=1, description="Fused gait+appearance similarity needed to re-link.")
    relink_threshold_other_camera: float = Field(
        0.7, gt=0, lt=1, description="The same for a lost track of another camera (no position to go by)."
    )
    reid_every: int = Field(3, ge=1, le=30, description="Pose and appearance on identified tracks every N frames.")

    @model_validator(mode="after")
    def _scenes_for_listed_cameras(self) -> PeoplePipeline:
        if self.cameras:
            extra = sorted(set(self.scenes) - set(self.cameras))
            if extra:
                raise ValueError(f"scenes given for cameras not in pipelines.people.cameras: {', '.join(extra)}")
        return self


class SpeechPipeline(PipelineSettings):
    """Offline speech intents from microphones (docs/speech.md)."""

    microphones: list[str] = Field(default_factory=list, description="Microphones to listen on; empty means every one.")
    recognizers: list[RecognizerSettings] = Field(
        default_factory=lambda: [RecognizerSettings()],
        min_length=1,
        description="Recognisers every utterance goes through (e.g. vosk zh + vosk en); the best intent wins.",
    )
    microphone_recognizers: dict[str, list[RecognizerSettings]] = Field(
        default_factory=dict, description="Per-microphone recognisers, replacing `recognizers` for that microphone."
    )
    vad: VadSettings = Field(default_factory=VadSettings, description="Voice activity detection.")
    intents: list[IntentSpec] = Field(default_factory=list, description="The store's intents.")
    max_pending_utterances: int = Field(
        2, ge=1, le=32, description="Utterances waiting for the recogniser; beyond this new ones are dropped whole."
    )
    when_busy: Literal["drop", "wait"] = Field(
        "drop", description="'drop' whole utterances when the recogniser lags (live); 'wait' blocks (replay)."
    )

    @model_validator(mode="after")
    def _unique_intents(self) -> SpeechPipeline:
        names = [i.name for i in self.intents]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"intents: {name!r} is declared twice")
        return self


class ProductZone(BaseModel):
    """A region of one camera where products are recognised: a counter (held up, put down) or a shelf."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Zone name used in events, e.g. 'counter'.")
    camera: str = Field(description="Camera that sees the zone (must be in `cameras`).")
    kind: Literal["counter", "shelf"] = Field(
        "counter", description="'counter': products are shown or put down there; 'shelf': people dwell in front of it."
    )
    box: tuple[float, float, float, float] = Field(
        (0.0, 0.0, 1.0, 1.0), description="Normalised [x0, y0, x1, y1] of the region in the camera image."
    )

    @model_validator(mode="after")
    def _box_order(self) -> ProductZone:
        x0, y0, x1, y1 = self.box
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(f"box {list(self.box)} must be [x0, y0, x1, y1] with 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1")
        return self


class ProductPipeline(PipelineSettings):
    """Product recognition against the store catalogue (visual search, barcode tie-in, interest)."""

    cameras: list[str] = Field(default_factory=list, description="Cameras that see the counter or shelf.")
    scanners: list[str] = Field(
        default_factory=list, description="Serial barcode scanners whose scans are checked against what a camera saw."
    )
    catalog_dir: ConfigPath = Field(
        Path("catalog"),
        validate_default=True,
        description="Catalogue folder: catalog.yaml plus one photo folder per SKU (relative to the config file).",
    )
    cache_dir: ConfigPath | None = Field(
        None, description="Where cached embeddings live; default '<state_dir>/catalog'."
    )
    zones: list[ProductZone] = Field(
        default_factory=list, description="Regions to recognise products in; a camera without one uses its whole image."
    )
    views: Literal["single", "multi"] = Field(
        "single",
        description="'multi' embeds 6 crops per image and averages them (+1 to +5 points top-1, 6x the compute).",
    )
    fps: float = Field(
        2.0, gt=0, le=30, description="Most crops per second embedded per zone; other frames are skipped."
    )
    centre_crop: float = Field(
        1.0,
        ge=0.3,
        le=1.0,
        description="Embed the central fraction of each side of a photo or zone crop (single view; 1.0 = whole). "
        "0.8 raised top-1 0.85 -> 0.88 but accepted 35 % instead of 3 % of unknown products' photos.",
    )
    whitening: bool = Field(
        True,
        description="Fit catalogue whitening on the reference photos when there are shelf photos besides studio ones "
        "(top-1 0.68 -> 0.85 with 5 shelf photos per SKU).",
    )
    min_score: float = Field(0.7, ge=-1, le=1, description="Cosine similarity below which a product stays unknown.")
    min_cosine: float = Field(
        0.5,
        ge=-1,
        le=1,
        description="With whitening: plain embedding cosine below which a crop is not a catalogued product at all "
        "(known products' photos: 99 % >= 0.62; people's hand regions without products: all <= 0.43).",
    )
    min_margin: float = Field(0.04, ge=0, le=2, description="Lead over the runner-up SKU below which it stays unknown.")
    vote_frames: int = Field(5, ge=1, le=50, description="Recent frames per zone that vote on the product.")
    vote_min: int = Field(3, ge=1, le=50, description="Votes a SKU needs among `vote_frames` to be recognised.")
    top_k: int = Field(5, ge=1, le=20, description="Candidates listed in product.recognized.")
    repeat_after_s: float = Field(
        30.0, gt=0, description="The same SKU in the same zone is announced again only after this long away."
    )
    mismatch_window_s: float = Field(
        5.0, gt=0, description="A scan and a sighting this close in time are compared for product.mismatch."
    )
    interest_dwell_s: float = Field(
        3.0, gt=0, description="Dwell that makes a product.interest: product held in view, or a person at a shelf."
    )

    @model_validator(mode="after")
    def _zones_consistent(self) -> ProductPipeline:
        names: set[str] = set()
        for i, zone in enumerate(self.zones):
            if zone.name in names:
                raise ValueError(f"zones[{i}].name: zone {zone.name!r} is defined twice")
            names.add(zone.name)
            if self.cameras and zone.camera not in self.cameras:
                raise ValueError(f"zones[{i}].camera: {zone.camera!r} is not in cameras {self.cameras}")
        if self.vote_min > self.vote_frames:
            raise ValueError(f"vote_min ({self.vote_min}) cannot exceed vote_frames ({self.vote_frames})")
        return self


class PipelinesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    motion: MotionPipeline = Field(default_factory=MotionPipeline, description="Motion detection.")
    face: FacePipeline = Field(default_factory=FacePipeline, description="Face identification.")
    people: PeoplePipeline = Field(default_factory=PeoplePipeline, description="People and scene analytics.")
    speech: SpeechPipeline = Field(default_factory=SpeechPipeline, description="Speech intents.")
    product: ProductPipeline = Field(default_factory=ProductPipeline, description="Product recognition.")

    def enabled_names(self) -> list[str]:
        return [name for name in type(self).model_fields if getattr(self, name).enabled]

    def check_references(self, config: StoreConfig) -> None:
        """Every device a pipeline names must be configured, and enabled when the pipeline is."""
        for name in type(self).model_fields:
            settings = getattr(self, name)
            for field_name, kind in (("cameras", "camera"), ("microphones", "microphone"), ("scanners", "serial")):
                known = config.device_names(kind, include_disabled=not settings.enabled)  # type: ignore[arg-type]
                state = "enabled " if settings.enabled else ""
                for i, source in enumerate(getattr(settings, field_name, [])):
                    if source not in known:
                        raise ValueError(
                            f"pipelines.{name}.{field_name}[{i}]: no {state}{kind} named {source!r} "
                            f"(configured: {', '.join(sorted(known)) or 'none'})"
                        )
