"""People counting against hand counts: clips, their annotations, and one run of the real people pipeline.

Shared by tests/scene/test_counting.py (one-sided floors) and bench/people_counting.py (the figures per clip
and split). An annotation (tests/scene/data/counting/*.yaml) names its clip by a path relative to the shared
data folder, its split (tuning / reporting), counting lines and one zone in normalised coordinates, and the
hand counts: line crossings (frame, direction) and people in view at stated frames. For the MOT17 excerpts the
people-in-view reference is the dataset's own ground truth, read at load time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import yaml

from agent.pipelines.people.events import PersonEntered, PersonExited, ZoneEntered, ZoneOccupancy
from models.people.detector import PersonDetection
from tests.conftest import data_dir
from tests.scene.helpers import frame, pipeline

ANNOTATIONS = Path(__file__).with_name("data") / "counting"
PETS_ANNOTATION = Path(__file__).with_name("data") / "pets2009_line.yaml"
PETS = "media/video/vtest_pets2009_480x360.avi"
Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Crossing:
    line: str
    frame: int
    direction: str  # "in" | "out"


@dataclass(frozen=True)
class Clip:
    """One annotated clip; ``occupancy`` maps a frame index (0-based) to the people in view there."""

    name: str
    path: str
    split: str
    view: str
    fps: float
    frames: int
    anchor: str
    lines: list[dict[str, Any]]
    zone: list[list[float]]
    crossings: list[Crossing]
    occupancy: dict[int, int]
    visits: int | None = None
    sha256: str | None = None

    def expected(self, line: str, direction: str) -> int:
        return sum(1 for c in self.crossings if c.line == line and c.direction == direction)


def _mot17_occupancy(folder: Path, spec: dict[str, Any], frames: int) -> dict[int, int]:
    gt = np.loadtxt(folder / "gt" / "gt.txt", delimiter=",", ndmin=2)
    keep = np.isin(gt[:, 7], spec["classes"]) & (gt[:, 8] >= spec["min_visibility"])
    return {f - 1: int(np.sum(keep & (gt[:, 0] == f))) for f in range(spec["from_frame"] + 1, frames + 1)}


def load_clip(path: Path, root: Path | None = None) -> Clip:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    occupancy: dict[int, int]
    if data["occupancy"] == "mot17-gt":
        folder = resolve(data["path"], root)
        occupancy = _mot17_occupancy(folder, data["mot17"], data["frames"]) if folder is not None else {}
    else:
        occupancy = {int(o["frame"]): int(o["count"]) for o in data["occupancy"]}
    return Clip(
        name=data["name"],
        path=data["path"],
        split=data["split"],
        view=data["view"],
        fps=float(data["fps"]),
        frames=int(data["frames"]),
        anchor=data["anchor"],
        lines=list(data["lines"]),
        zone=data["zone"],
        crossings=[Crossing(c["line"], int(c["frame"]), c["direction"]) for c in data["crossings"]],
        occupancy=occupancy,
        visits=data.get("visits"),
        sha256=data.get("sha256"),
    )


def load_pets() -> Clip:
    """The PETS2009 side-view clip with its line annotation (issue 7), as a counting clip."""
    data: dict[str, Any] = yaml.safe_load(PETS_ANNOTATION.read_text(encoding="utf-8"))
    (ax, ay), (bx, by) = data["line"]["points"]
    line = {"name": data["line"]["name"], "points": [[ax / 480, ay / 360], [bx / 480, by / 360]]}
    return Clip(
        name="pets2009",
        path=PETS,
        split="reporting",
        view="side",
        fps=10.0,
        frames=795,
        anchor="bottom",
        lines=[line],
        zone=[],
        crossings=[Crossing(line["name"], int(c["frame"]), c["direction"]) for c in data["crossings"]],
        occupancy={},
    )


def all_clips(root: Path | None = None) -> list[Clip]:
    return [load_pets(), *(load_clip(p, root) for p in sorted(ANNOTATIONS.glob("*.yaml")))]


def search_roots() -> list[Path]:
    """The shared data folder, then ``$STORE_AGENT_EXTRA_DATA`` (clips not yet in the shared data)."""
    roots = [data_dir()]
    extra = os.environ.get("STORE_AGENT_EXTRA_DATA")
    if extra:
        roots.append(Path(extra))
    return roots


def resolve(relative: str, root: Path | None = None) -> Path | None:
    for base in [root] if root is not None else search_roots():
        if (base / relative).exists():
            return base / relative
    return None


def read_frames(clip: Clip, root: Path | None = None) -> list[Image] | None:
    """Every frame of the clip (a video file, a GIF, or a folder of JPEGs), or None when it is not here."""
    path = resolve(clip.path, root)
    if path is None:
        return None
    if path.is_dir():
        images = [cv2.imread(str(p)) for p in sorted((path / "img1").glob("*.jpg"))]
        frames = [np.asarray(i, dtype=np.uint8) for i in images if i is not None]
    else:
        capture = cv2.VideoCapture(str(path))
        frames = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            frames.append(np.asarray(image, dtype=np.uint8))
        capture.release()
    if len(frames) != clip.frames:
        raise ValueError(f"{path}: expected {clip.frames} frames, decoded {len(frames)}")
    return frames


@dataclass
class CountResult:
    """What the pipeline counted on one clip."""

    crossings: dict[str, dict[str, int]] = field(default_factory=dict)  # line -> {"in": n, "out": n}
    crossing_frames: list[tuple[str, int, str]] = field(default_factory=list)  # (line, frame, direction)
    occupancy: dict[int, int] = field(default_factory=dict)  # annotated frame -> people in the zone
    visits: int = 0  # zone.entered events


class ReplayDetector:
    """Detections computed once per frame (a detector sweep's cache) handed back as the pipeline asks."""

    def __init__(self, per_frame: Sequence[list[PersonDetection]]) -> None:
        self.per_frame = per_frame
        self.index = 0

    def detect(self, image: Image) -> list[PersonDetection]:
        return self.per_frame[self.index]


def detect_all(
    frames: Sequence[Image], detect: Callable[[Image], list[PersonDetection]]
) -> list[list[PersonDetection]]:
    return [detect(image) for image in frames]


def run_clip(
    clip: Clip, frames: Sequence[Image], detector: Any, settings: dict[str, Any], scene: dict[str, Any] | None = None
) -> CountResult:
    """Replay the clip through the real people pipeline with ``settings`` (pipelines.people keys) and ``scene``
    (the camera's scene keys: view, tiles, anchor); the clip's lines and zone are added to the scene."""
    camera: dict[str, Any] = {"normalized": True, "anchor": clip.anchor, "lines": clip.lines, **(scene or {})}
    if clip.zone:
        camera["zones"] = [{"name": "view", "points": clip.zone}]
    config = {**settings, "occupancy_min_interval_s": 0.0, "occupancy_every_s": 0.0, "scenes": {clip.name: camera}}
    p = pipeline(clip.name, config, detector)
    result = CountResult(crossings={ln["name"]: {"in": 0, "out": 0} for ln in clip.lines})
    count = 0
    for i, image in enumerate(frames):
        if isinstance(detector, ReplayDetector):
            detector.index = i
        for e in p.process(frame(clip.name, i, image, clip.fps)):
            if isinstance(e, PersonEntered | PersonExited):
                direction = "in" if isinstance(e, PersonEntered) else "out"
                result.crossings[e.line][direction] += 1
                result.crossing_frames.append((e.line, i, direction))
            elif isinstance(e, ZoneOccupancy):
                count = e.count
            elif isinstance(e, ZoneEntered):
                result.visits += 1
        if i in clip.occupancy:
            result.occupancy[i] = count
    return result


def occupancy_ratio(clip: Clip, result: CountResult) -> float:
    """Counted over annotated people-in-view, summed over the annotated frames (1.0 is perfect)."""
    truth = sum(clip.occupancy.values())
    return sum(result.occupancy.get(f, 0) for f in clip.occupancy) / truth if truth else float("nan")


def occupancy_abs_error(clip: Clip, result: CountResult) -> int:
    """Summed |counted - annotated| over the annotated frames."""
    return sum(abs(result.occupancy.get(f, 0) - n) for f, n in clip.occupancy.items())
