"""Helpers for scene tests: frames with a capture stamp, and a pipeline built from settings."""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.identity.fusion import IdentityFusion
from agent.pipelines.people.reid import ReidMemory
from agent.pipelines.people.settings import PeopleSettings
from agent.pipelines.people.stage import PeopleStage
from drivers.base import Capture, Frame

EPOCH = 1_700_000_000.0


def frame(camera: str, index: int, image: np.ndarray, fps: float = 10.0) -> Frame:
    t = index / fps
    return Frame(source=camera, capture=Capture(seq=index, mono_ns=int(t * 1e9), wall_time=EPOCH + t), image=image)


def pipeline(
    camera: str,
    settings: dict[str, Any],
    detector: Any,
    pose: Any = None,
    appearance: Any = None,
    fusion: IdentityFusion | None = None,
    reid: ReidMemory | None = None,
    anonymous_id_s: float = 300.0,
) -> PeopleStage:
    s = PeopleSettings.model_validate({"enabled": True, "cameras": [camera], **settings})
    return PeopleStage(
        camera,
        s,
        detector,
        pose,
        appearance,
        fusion or IdentityFusion(),
        reid
        or ReidMemory(s.relink_window_s, s.relink_threshold, other_camera_threshold=s.relink_threshold_other_camera),
        anonymous_id_s=anonymous_id_s,
    )
