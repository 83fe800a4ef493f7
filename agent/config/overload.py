"""The ``overload:`` section: how the terminal sheds load when the board cannot keep up (agent/runtime/overload.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Load-shedding steps, in the order they are taken by default (undone in reverse): the cheapest loss first.
#: face.detector_stride: the face detector on every 2nd frame; people.detector_stride: the person detector on
#: half as many frames (the tracker predicts between); people.reid_rate: pose and appearance half as often;
#: product.fps: product crops embedded at half the rate.
Step = Literal["face.detector_stride", "people.detector_stride", "people.reid_rate", "product.fps"]
STEPS: tuple[Step, ...] = ("face.detector_stride", "people.detector_stride", "people.reid_rate", "product.fps")


class OverloadSection(BaseModel):
    """Graceful overload: when pipelines fall behind their sources, shed load in a stated order, say so in
    ``health.degraded``, and undo it when the load falls (docs/performance.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = Field(True, description="Shed load in the order of `steps` when pipelines fall behind.")
    steps: list[Step] = Field(
        default_factory=lambda: list(STEPS),
        description="The steps in the order they are taken (undone in reverse); leave one out to never take it.",
    )
    behind_after_s: float = Field(
        3.0, ge=0.5, le=600, description="Pipelines behind (queue drops, or processing under 90% of what their "
        "source delivers) in at least 80% of the checks over this long take the next step."
    )  # fmt: skip
    recover_after_s: float = Field(
        30.0, ge=0.5, le=3600, description="Pipelines behind in at most 10% of the checks over this long undo the "
        "last step taken; doubled each time an undone step had to be taken again within this time (no flapping)."
    )  # fmt: skip

    @model_validator(mode="after")
    def _unique_steps(self) -> OverloadSection:
        if len(set(self.steps)) != len(self.steps):
            raise ValueError(f"steps: a step is listed twice in {self.steps}")
        return self
