"""The ``pipelines:`` section: one model per pipeline, each with ``enabled`` and the sources it reads.

Each pipeline's settings live in its own class here so they can grow
independently; ``check_references`` makes sure every named source exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


class PeoplePipeline(PipelineSettings):
    """Person detection, tracking, zones, lines, dwell and queues."""

    cameras: list[str] = Field(default_factory=list, description="Cameras to count and track people on.")


class SpeechPipeline(PipelineSettings):
    """Offline speech intents from microphones."""

    microphones: list[str] = Field(default_factory=list, description="Microphones to listen on.")


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
    min_score: float = Field(0.6, ge=-1, le=1, description="Cosine similarity below which a product stays unknown.")
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
        """Every camera or microphone a pipeline names must be configured."""
        for name in type(self).model_fields:
            settings = getattr(self, name)
            for field_name, kind in (("cameras", "camera"), ("microphones", "microphone")):
                known = config.device_names(kind)  # type: ignore[arg-type]
                for i, source in enumerate(getattr(settings, field_name, [])):
                    if source not in known:
                        raise ValueError(
                            f"pipelines.{name}.{field_name}[{i}]: no enabled {kind} named {source!r} "
                            f"(configured: {', '.join(sorted(known)) or 'none'})"
                        )
