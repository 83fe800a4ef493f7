"""The motion pipeline's settings, each changing what the frame-difference detector reports.

Frames are drawn here (a bright square crossing a grey scene, then leaving it) and stamped 10 fps apart, so
what each setting changes is exact: how bright a change must be, how large, how long the quiet before an
episode ends, and how much detail survives the shrink before differencing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agent.pipelines.motion.events import MotionEvent
from agent.pipelines.motion.settings import MotionSettings
from agent.pipelines.motion.stage import MotionStage
from drivers.base import Capture, Frame

FPS = 10.0


def scene(width: int = 320, height: int = 240, side: int = 40, moving: int = 10, after: int = 60) -> list[Any]:
    """``moving`` frames of a white ``side`` px square crossing a grey scene, then ``after`` empty frames."""
    frames = []
    for i in range(1 + moving + after):
        image = np.full((height, width, 3), 80, np.uint8)
        if 1 <= i <= moving:
            x = 10 + (i - 1) * (width - side - 20) // max(moving - 1, 1)
            image[height // 3 : height // 3 + side, x : x + side] = 255
        frames.append(image)
    return frames


def run(frames: list[Any], **settings: Any) -> list[MotionEvent]:
    stage = MotionStage("door", MotionSettings(enabled=True, **settings))
    events: list[Any] = []
    for i, image in enumerate(frames):
        t = i / FPS
        events += stage.process(Frame("door", Capture(i + 1, int(t * 1e9), 1_700_000_000.0 + t), image))
    events += stage.finish()
    return events


def states(events: list[MotionEvent]) -> list[str]:
    return [e.state for e in events]


def test_threshold_is_the_grey_level_change_that_counts() -> None:
    frames = scene()  # white (255) on grey (80): a change of about 175 grey levels
    assert states(run(frames, threshold=25)) == ["started", "ended"]
    assert run(frames, threshold=200) == []


def test_min_area_is_the_smallest_moving_fraction_of_the_frame() -> None:
    frames = scene(side=40)  # the square and where it just was: about 4 % of a 320x240 frame
    started = run(frames, min_area=0.01)
    assert states(started) == ["started", "ended"] and 0.01 <= started[0].area < 0.1
    assert run(frames, min_area=0.2) == []


@pytest.mark.parametrize("end_after_s", [1.0, 3.0])
def test_end_after_s_is_the_quiet_that_ends_an_episode(end_after_s: float) -> None:
    frames = scene(moving=10, after=60)  # moves from 0.1 s to 1.0 s, then 6 s of empty scene
    started, ended = run(frames, end_after_s=end_after_s)
    assert (started.state, ended.state) == ("started", "ended")
    last_motion = ended.captured_at - end_after_s
    assert 0.9 <= last_motion - 1_700_000_000.0 <= 1.25  # the square's last frames, then the quiet
    assert ended.duration_s == pytest.approx(last_motion - started.captured_at, abs=0.11)


def test_downscale_width_decides_how_small_a_change_survives() -> None:
    """A 4 px object moving in a 640 px frame: seen when differencing at full width, averaged away at 64 px."""
    frames = scene(width=640, height=480, side=4, moving=20, after=5)
    assert states(run(frames, downscale_width=640, min_area=0.00001)) == ["started", "ended"]
    assert run(frames, downscale_width=64, min_area=0.00001) == []
