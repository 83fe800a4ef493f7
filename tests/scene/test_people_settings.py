"""Each ``pipelines.people`` setting changing what the people pipeline reports, on real PETS2009 frames.

Frames 150-319 (17 s at 10 fps) hold the clip's first four crossings of the annotated "road-west" line (three in,
one out; tests/scene/data/pets2009_line.yaml) and several pedestrians in the plaza. Every run detects with the
real YOLOX-nano; a frame is detected once per session (``recorded_detector``), so the many settings cost only
tracking and analytics.
"""

from __future__ import annotations

import collections
import itertools
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.config.loader import parse_config
from agent.identity.fusion import IdentityFusion
from agent.pipelines.people.events import PersonEntered, PersonExited, QueueLength, ZoneEntered, ZoneOccupancy
from agent.pipelines.people.reid import LostMember, TrackSignature
from agent.pipelines.people.settings import PeopleScene, PeopleSettings
from agent.pipelines.people.stage import PeopleStage, build, build_scene
from agent.runtime.wiring import build_shared
from tests.media import config_text
from tests.scene.helpers import EPOCH, frame, pipeline

FIRST, LAST = 150, 320
LINE = {"name": "road-west", "points": [[0.25, 100 / 360], [0.25, 240 / 360]]}  # pixels (120, 100) -> (120, 240)
PLAZA = {"name": "plaza", "points": [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]], "queue": True}
UPPER = {"name": "upper", "points": [[0.0, 0.0], [1.0, 0.0], [1.0, 0.45], [0.0, 0.45]]}


class Run:
    """What one pass of the people pipeline over the frames produced."""

    def __init__(self, stage: PeopleStage, events: list[Any], seen: dict[str, list[int]], calls: int) -> None:
        self.stage, self.events, self.seen, self.calls = stage, events, seen, calls

    def of(self, cls: type, **fields: Any) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls) and all(getattr(e, k) == v for k, v in fields.items())]

    def crossings(self) -> list[tuple[float, str]]:
        """(seconds into the clip, direction) of every line crossing, in time order."""
        found = [(e.captured_at, "in") for e in self.of(PersonEntered)] + [
            (e.captured_at, "out") for e in self.of(PersonExited)
        ]
        return sorted((round(t - EPOCH, 1), d) for t, d in found)


@pytest.fixture(scope="module")
def run(pets_frames: list[np.ndarray], recorded_detector: Any) -> Any:
    def go(scene: dict[str, Any] | None = None, blank: range = range(0), last: int = LAST, **settings: Any) -> Run:
        detector = recorded_detector()
        scene = scene if scene is not None else {"lines": [LINE], "zones": [PLAZA, UPPER]}
        stage = pipeline("pets", {"detect_every": 2, "scenes": {"pets": scene}, **settings}, detector)
        events: list[Any] = []
        seen: dict[str, list[int]] = collections.defaultdict(list)
        for i in range(FIRST, last):
            image = np.full_like(pets_frames[0], 127) if i in blank else pets_frames[i]
            events += stage.process(frame("pets", i, image))
            for track in stage.tracker.active():
                seen[stage.key(track)].append(i)
        events += stage.finish()
        return Run(stage, events, seen, detector.calls)

    return go


def test_detect_every_is_how_often_the_detector_runs(run: Any) -> None:
    assert [run(detect_every=n).calls for n in (1, 2, 3)] == [170, 85, 57]


def test_score_threshold_is_the_lowest_detection_kept(
    tmp_path: Path, models_dir: Path, pets_frames: list[np.ndarray]
) -> None:
    """``score_threshold`` reaches the detector the pipeline builds: nothing scoring below it is kept."""
    scores = {}
    for threshold in (0.1, 0.5):
        body = f"models: {{directory: {models_dir}}}\ncameras:\n  - {{name: pets, type: test-pattern}}\n"
        body += f"pipelines:\n  people: {{enabled: true, score_threshold: {threshold}}}\n"
        config = parse_config(
            config_text(tmp_path, body).replace(f"models: {{directory: {tmp_path}/models}}\n", ""), base_dir=tmp_path
        )
        with ExitStack() as stack:
            (stage,) = build(config.pipelines.settings(PeopleSettings), build_shared(config, stack))
        assert isinstance(stage, PeopleStage)
        scores[threshold] = [
            d.score for i in range(FIRST, FIRST + 20, 5) for d in stage.detector.detect(pets_frames[i])
        ]
    assert min(scores[0.1]) >= 0.1 and min(scores[0.5]) >= 0.5
    assert any(s < 0.5 for s in scores[0.1])  # the low ones the second association stage uses
    assert sorted(s for s in scores[0.1] if s >= 0.5) == pytest.approx(sorted(scores[0.5]))


def test_new_track_score_is_what_starts_a_track(run: Any) -> None:
    tracks = {score: len(run(track_high_score=0.3, new_track_score=score).seen) for score in (0.3, 0.6, 0.9)}
    assert tracks[0.3] > tracks[0.6] > tracks[0.9] == 0, tracks


def test_track_high_score_is_the_first_stage_and_bounds_new_tracks(run: Any) -> None:
    """``track_high_score``: detections below it only extend existing tracks (second stage); above it they may
    also start one. Lowered with new_track_score, people scoring 0.3-0.5 (small, seen from above) are tracked."""
    low = len(run(track_high_score=0.3, new_track_score=0.3).seen)
    default = len(run(new_track_score=0.6).seen)
    assert low > default, (low, default)
    with pytest.raises(Exception, match="score_threshold <= track_high_score <= new_track_score"):
        run(track_high_score=0.5, new_track_score=0.3)


def test_lost_track_s_is_how_long_a_track_survives_without_detections(run: Any) -> None:
    """A second of blank frames: with 3 s the tracks carry on under their ids, with 0.3 s they all end."""

    def carried(lost_track_s: float) -> int:
        seen = run(blank=range(190, 200), last=240, lost_track_s=lost_track_s).seen
        return len({k for k, f in seen.items() if min(f) < 190} & {k for k, f in seen.items() if max(f) >= 200})

    assert carried(0.3) == 0 and carried(3.0) >= 3


def test_lines_name_points_invert_and_normalized(run: Any) -> None:
    """A line's ``name`` is in its events, ``points`` place it, ``invert`` swaps in and out, ``normalized``
    says whether the points are fractions of the frame or pixels."""
    base = run(scene={"lines": [LINE]})
    assert sorted(d for _, d in base.crossings()) == ["in", "in", "in", "out"]  # as annotated by hand
    assert {e.line for e in base.of(PersonEntered) + base.of(PersonExited)} == {"road-west"}
    inverted = run(scene={"lines": [{**LINE, "invert": True}]})
    assert inverted.crossings() == [(t, "out" if d == "in" else "in") for t, d in base.crossings()]
    pixels = run(scene={"normalized": False, "lines": [{**LINE, "points": [[120, 100], [120, 240]]}]})
    assert pixels.crossings() == base.crossings()
    moved = run(scene={"lines": [{**LINE, "points": [[0.75, 0.2], [0.75, 0.9]]}]})
    assert moved.crossings() != base.crossings()
    zones, lines = build_scene("pets", PeopleScene.model_validate({"zones": [UPPER], "lines": [LINE]}), 480, 360)
    assert zones[0].polygon == [(0.0, 0.0), (480.0, 0.0), (480.0, 162.0), (0.0, 162.0)] and lines[0].a == (120.0, 100.0)


def test_anchor_is_the_point_of_a_person_tested_against_zones(run: Any) -> None:
    """A zone over the upper part of the frame: more people have their box centre in it than their feet."""
    feet = len(run(scene={"anchor": "bottom", "zones": [UPPER]}).of(ZoneEntered))
    centres = len(run(scene={"anchor": "centre", "zones": [UPPER]}).of(ZoneEntered))
    assert centres > feet > 0, (feet, centres)


def test_zones_name_points_queue_and_queue_min_wait(run: Any) -> None:
    """A zone's ``name`` and ``points`` decide who is in it; ``queue`` adds queue.length, counting those inside
    for ``queue_min_wait_s``."""
    plaza = run(scene={"zones": [PLAZA]}, occupancy_min_interval_s=0.0)
    upper = run(scene={"zones": [{**PLAZA, "points": UPPER["points"]}]}, occupancy_min_interval_s=0.0)
    assert {e.zone for e in plaza.of(ZoneEntered)} == {"plaza"}
    assert len(plaza.of(ZoneEntered)) != len(upper.of(ZoneEntered))
    assert run(scene={"zones": [{**PLAZA, "queue": False}]}).of(QueueLength) == []
    longest, waiting = {}, {}
    for wait in (0, 3, 30):
        queues = run(scene={"zones": [{**PLAZA, "queue_min_wait_s": wait}]}, occupancy_min_interval_s=0.0)
        longest[wait] = max(e.length for e in queues.of(QueueLength))
        waiting[wait] = sum(e.length for e in queues.of(QueueLength))  # people-reports over the clip
    assert longest[0] >= longest[3] > longest[30] == 0, longest
    assert waiting[0] > waiting[3] > waiting[30] == 0, waiting


def test_enter_frames_is_how_long_before_an_entry_counts(run: Any) -> None:
    quick, slow = run(enter_frames=1), run(enter_frames=20)
    assert len(slow.of(ZoneEntered)) < len(quick.of(ZoneEntered))
    first = {n: min(e.captured_at for e in r.of(ZoneEntered)) for n, r in (("quick", quick), ("slow", slow))}
    assert first["slow"] - first["quick"] >= 1.5, first


def test_line_deadband_absorbs_jitter_at_a_line(run: Any) -> None:
    """Without a band, feet wobbling at the line count extra crossings; the default band (1.5 % of the
    height) leaves the four annotated ones; a very wide one loses some."""
    counts = {band: len(run(scene={"lines": [LINE]}, line_deadband=band).crossings()) for band in (0.0, 0.015, 0.19)}
    assert counts[0.0] > counts[0.015] == 4 > counts[0.19], counts


def test_occupancy_min_interval_and_heartbeat(run: Any) -> None:
    """``occupancy_min_interval_s`` spaces zone.occupancy changes; ``occupancy_every_s`` adds a periodic one."""

    def occupancy(**settings: Any) -> list[tuple[float, str]]:
        events = run(scene={"zones": [PLAZA]}, **settings).of(ZoneOccupancy)
        return [(e.captured_at, e.reason) for e in events]

    free = occupancy(occupancy_min_interval_s=0.0, occupancy_every_s=0.0)
    spaced = occupancy(occupancy_min_interval_s=5.0, occupancy_every_s=0.0)
    assert len(free) > len(spaced) and min(b[0] - a[0] for a, b in itertools.pairwise(free)) < 1.0
    assert all(b[0] - a[0] >= 5.0 - 1e-6 for a, b in itertools.pairwise(spaced))
    assert {r for _, r in spaced} == {"change"}
    beating = occupancy(occupancy_min_interval_s=5.0, occupancy_every_s=2.0)
    periodic = [t for t, r in beating if r == "periodic"]
    assert len(periodic) >= 3 and all(b - a >= 2.0 - 1e-6 for a, b in itertools.pairwise(periodic))


class CountingAppearance:
    """The real OSNet embedder, counting the frames it was run on."""

    def __init__(self, appearance: Any) -> None:
        self.appearance, self.frames = appearance, 0

    def embed(self, image: np.ndarray, boxes: list[Any]) -> Any:
        self.frames += 1
        return self.appearance.embed(image, boxes)


def test_reid_every_is_how_often_identified_tracks_are_described(
    pets_frames: list[np.ndarray], recorded_detector: Any, pose: Any, appearance: Any
) -> None:
    """Pose and appearance run for a member's track on every ``reid_every``-th frame only."""
    runs = {}
    for every in (1, 3):
        fusion = IdentityFusion()
        counting = CountingAppearance(appearance)
        stage = pipeline("pets", {"detect_every": 2, "reid_every": every}, recorded_detector(), pose, counting, fusion)
        for i in range(FIRST, FIRST + 40):
            list(stage.process(frame("pets", i, pets_frames[i])))
            if i == FIRST + 9:
                track = max(stage.tracker.active(), key=lambda t: t.box[3] - t.box[1])
                fusion.assign_identity("pets", stage.key(track), "member-7", "face", 0.9)
                counting.frames = 0
        runs[every] = counting.frames
    assert runs[1] >= 25 and runs[3] <= runs[1] / 2.5, runs


def test_relink_window_and_thresholds(tmp_path: Path) -> None:
    """The re-link memory the runtime builds from ``relink_window_s``, ``relink_threshold`` (same camera) and
    ``relink_threshold_other_camera``: a new track whose signature scores 0.8 against a lost member is linked
    only within the window and above the threshold for where it is."""
    rng = np.random.default_rng(3)
    lost_look = rng.normal(size=512).astype(np.float32)
    lost_look /= np.linalg.norm(lost_look)
    other = rng.normal(size=512).astype(np.float32)
    other -= (other @ lost_look) * lost_look
    other /= np.linalg.norm(other)
    new_look = 0.8 * lost_look + 0.6 * other  # cosine 0.8 with the lost member's appearance

    def linked(camera: str, gap_s: float, **people: float) -> bool:
        text = config_text(tmp_path, "pipelines:\n  people: " + str(people).replace("'", "") + "\n")
        with ExitStack() as stack:
            reid = build_shared(parse_config(text, base_dir=tmp_path), stack).reid
            reid.add_lost(LostMember("door", "t-1", "member-7", lost_look, None, (0.5, 0.5), (0.0, 0.0), 100.0))
            signature = TrackSignature()
            for _ in range(3):
                signature.add(100.0 + gap_s, new_look, None)
            return reid.match(camera, signature, (0.5, 0.5), 100.0 + gap_s) is not None

    assert linked("door", 5.0, relink_threshold=0.7) and not linked("door", 5.0, relink_threshold=0.95)
    assert not linked("door", 5.0, relink_threshold=0.7, relink_window_s=4.0)
    assert linked("aisle", 5.0, relink_threshold_other_camera=0.75)
    assert not linked("aisle", 5.0, relink_threshold_other_camera=0.85)


def test_scene_view_and_tiles_choose_the_detector_and_tracker(run: Any) -> None:
    """``scenes.<camera>.view: overhead`` tiles the detector (3x2 on frames >= 960 px), lowers the track scores,
    shortens the lost-track memory and tests the box centre; ``tiles`` overrides the grid; side keeps the
    pipeline's settings. (Counting accuracy per view: tests/scene/test_counting.py.)"""
    from models.people import TiledPersonDetector

    side = run(scene={"zones": [PLAZA]}, last=FIRST + 1).stage
    over = run(scene={"view": "overhead", "zones": [PLAZA]}, last=FIRST + 1).stage
    grid = run(scene={"tiles": [2, 2], "zones": [PLAZA]}, last=FIRST + 1).stage
    assert not isinstance(side.detector, TiledPersonDetector) and side.scene.anchor_point == "bottom"
    assert isinstance(over.detector, TiledPersonDetector) and (
        over.detector.settings.cols,
        over.detector.settings.rows,
    ) == (3, 2)
    assert over.tracker.settings.high_score == 0.35 and over.lost_track_s == 1.0 and over.scene.anchor_point == "centre"
    assert side.tracker.settings.high_score == 0.5 and side.lost_track_s == 3.0
    assert isinstance(grid.detector, TiledPersonDetector) and grid.detector.settings.cols == 2
    assert over.detector.windows(480, 360) == [(0, 0, 480, 360)], "PETS-sized frames are not tiled"
