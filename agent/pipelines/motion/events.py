"""The motion pipeline's one event: motion started or ended on a camera."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from agent.events import EventBody, Retention


@dataclass(frozen=True, kw_only=True)
class MotionEvent(EventBody):
    """Motion started or ended on a camera; ``bbox`` is normalised [x0, y0, x1, y1] of the moving area."""

    TYPE: ClassVar[str] = "scene.motion"
    RETENTION: ClassVar[Retention] = Retention.TELEMETRY
    camera: str
    state: str
    area: float
    bbox: tuple[float, float, float, float]
    duration_s: float | None = None
