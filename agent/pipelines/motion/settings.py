"""``pipelines.motion``: the motion pipeline's settings."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from agent.pipelines.base import PipelineSettings
from drivers.registry import DeviceKind


class MotionSettings(PipelineSettings):
    """Frame-difference motion detection: cheap, needs no model, useful to check a camera works."""

    SOURCE_FIELDS: ClassVar[dict[str, DeviceKind]] = {"cameras": "camera"}
    cameras: list[str] = Field(default_factory=list, description="Cameras to watch; empty means every camera.")
    min_area: float = Field(
        0.01, gt=0, lt=1, description="Smallest moving area, as a fraction of the frame, that counts."
    )
    threshold: int = Field(25, ge=1, le=255, description="Per-pixel grey-level change that counts as motion.")
    end_after_s: float = Field(2.0, gt=0, description="Motion ends after this long without any.")
    downscale_width: int = Field(
        320, ge=64, le=1920, description="Frames are shrunk to this width before differencing."
    )
