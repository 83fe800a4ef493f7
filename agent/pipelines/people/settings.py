"""``pipelines.people``: person tracking, zones and lines per camera, re-linking of identified members."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.pipelines.base import ConfiguredDevices, PipelineSettings
from drivers.registry import DeviceKind


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


#: What an overhead camera changes (measured on overhead clips, docs/scene.md): tiles so small people are found,
#: lower detector scores to start and keep tracks (people seen from above score 0.3-0.5), short lost-track
#: memory (occupancy), and the box centre as the point tested (feet are not visible from above).
OVERHEAD = {"tiles": (3, 2), "track_high_score": 0.35, "new_track_score": 0.4, "lost_track_s": 1.0}


class PeopleScene(BaseModel):
    """Zones and lines of one camera, and how it looks at people."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    view: Literal["side", "overhead"] = Field(
        "side",
        description="'overhead': a camera looking down (tiled detection on frames >= 960 px, lower track scores, "
        "1 s lost-track memory, centre anchor); 'side': the pipeline's own settings.",
    )
    tiles: tuple[int, int] | None = Field(
        None,
        description="Detector tiles [cols, rows] on frames whose longer side is >= 960 px (small or distant "
        "people); null: 1x1 for side views, 3x2 overhead. Each tile costs a detector run.",
    )
    normalized: bool = Field(True, description="Coordinates are fractions of the frame (0..1); false: pixels.")
    anchor: Literal["bottom", "centre"] | None = Field(
        None, description="Point of a person box tested: feet (bottom) or centre; null: bottom side, centre overhead."
    )
    zones: list[PeopleZone] = Field(default_factory=list, description="Polygon zones.")
    lines: list[PeopleLine] = Field(default_factory=list, description="Directed counting lines.")

    @model_validator(mode="after")
    def _unique_names(self) -> PeopleScene:
        names = [z.name for z in self.zones] + [ln.name for ln in self.lines]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"zone/line names must be unique per camera; repeated: {', '.join(dupes)}")
        if self.tiles is not None and not (1 <= self.tiles[0] <= 6 and 1 <= self.tiles[1] <= 6):
            raise ValueError(f"tiles must be [cols, rows] from 1 to 6 each (got {list(self.tiles)})")
        return self

    @property
    def anchor_point(self) -> Literal["bottom", "centre"]:
        return self.anchor or ("centre" if self.view == "overhead" else "bottom")

    @property
    def tile_grid(self) -> tuple[int, int]:
        if self.tiles is not None:
            return self.tiles
        tiles: tuple[int, int] = OVERHEAD["tiles"] if self.view == "overhead" else (1, 1)  # type: ignore[assignment]
        return tiles


class PeopleSettings(PipelineSettings):
    """Person detection, tracking, zones, lines, dwell and queues; gait/appearance re-link of identified members."""

    SOURCE_FIELDS: ClassVar[dict[str, DeviceKind]] = {"cameras": "camera"}
    cameras: list[str] = Field(default_factory=list, description="Cameras to count and track people on.")
    scenes: dict[str, PeopleScene] = Field(
        default_factory=dict, description="Zones and lines per camera name (a camera without a scene is only tracked)."
    )
    detect_every: int = Field(2, ge=1, le=30, description="Run the detector every N frames; track in between.")
    score_threshold: float = Field(0.1, gt=0, lt=1, description="Lowest detector score kept (for the second stage).")
    track_high_score: float = Field(
        0.5, gt=0, lt=1, description="Detector score of the first association stage (and of confirming a track)."
    )
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

    def model_names(self) -> list[str]:
        return ["yolox-nano", "movenet-lightning", "osnet-x0.25-msmt17"]  # detector, pose, appearance (stage.build)

    @model_validator(mode="after")
    def _scores_in_order(self) -> PeopleSettings:
        if not self.score_threshold <= self.track_high_score <= self.new_track_score:
            raise ValueError(
                "scores must be score_threshold <= track_high_score <= new_track_score "
                f"(got {self.score_threshold}, {self.track_high_score}, {self.new_track_score}): a track starts "
                "only from a detection the first stage keeps"
            )
        return self

    @model_validator(mode="after")
    def _scenes_for_listed_cameras(self) -> PeopleSettings:
        if self.cameras:
            extra = sorted(set(self.scenes) - set(self.cameras))
            if extra:
                raise ValueError(f"scenes given for cameras not in pipelines.people.cameras: {', '.join(extra)}")
        return self

    def check_sources(self, name: str, devices: ConfiguredDevices) -> None:
        super().check_sources(name, devices)
        cameras = devices.device_names("camera", include_disabled=not self.enabled)
        for camera in self.scenes:
            if camera not in cameras:
                raise ValueError(f"pipelines.{name}.scenes.{camera}: no enabled camera named {camera!r}")
