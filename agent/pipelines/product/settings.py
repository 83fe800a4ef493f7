"""``pipelines.product``: product recognition against the store catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.pipelines.base import PipelineSettings
from drivers.base import ConfigPath
from drivers.registry import DeviceKind


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


class ProductSettings(PipelineSettings):
    """Product recognition against the store catalogue (visual search, barcode tie-in, interest)."""

    SOURCE_FIELDS: ClassVar[dict[str, DeviceKind]] = {"cameras": "camera", "scanners": "serial"}
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

    def model_names(self) -> list[str]:
        from models.product.embedder import MODEL_NAME

        return [MODEL_NAME]

    zones: list[ProductZone] = Field(
        default_factory=list, description="Regions to recognise products in; a camera without one uses its whole image."
    )
    views: Literal["single", "multi"] = Field(
        "single",
        description="'multi' embeds 6 crops per image and averages them (top-1 0.857 -> 0.867, 6x the compute).",
    )
    fps: float = Field(
        2.0, gt=0, le=30, description="Most crops per second embedded per zone; other frames are skipped."
    )
    centre_crop: float = Field(
        0.7,
        ge=0.3,
        le=1.0,
        description="Embed the central fraction of each side of a photo or zone crop (single view; 1.0 = whole). "
        "On shelf photos of later store visits: top-1 0.73 at 1.0, 0.86 at 0.7 (docs/product.md).",
    )
    input_size: int = Field(
        384,
        ge=224,
        le=512,
        multiple_of=32,
        description="Side of the square the embedder sees: 384 top-1 0.86 (141 ms a crop on the dev VM), 320 0.84, "
        "224 0.81 (59 ms); smaller for slow boards.",
    )
    whitening: bool = Field(
        True,
        description="Fit catalogue whitening on the reference photos when there are shelf photos besides studio ones "
        "(within one store visit, 5 shelf photos per SKU: top-1 0.68 -> 0.85).",
    )
    min_score: float = Field(
        0.8,
        ge=-1,
        le=1,
        description="Similarity below which a product stays unknown (0.8: 96 % precision, 22 % of unknown products' "
        "photos accepted; 0.85: 98 %, 11 %, but a third of known photos stay unknown).",
    )
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
    def _zones_consistent(self) -> ProductSettings:
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
