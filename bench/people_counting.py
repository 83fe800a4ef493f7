"""People counts against hand counts, per clip and split, with the shipped settings and the proposed ones.

Clips and hand counts: tests/scene/data/counting/*.yaml (+ the PETS2009 line annotation of issue 7). Each
clip is replayed through the real people pipeline (YOLOX-nano, ByteTracker, zones and lines); printed per clip:
its split (tuning / reporting), view, the hand count and what each settings profile counted, then the
detector's cost per frame on this machine. Clips not in the shared data are looked up in
$STORE_AGENT_EXTRA_DATA (same relative paths) and skipped, with their name, when absent.

    STORE_AGENT_DATA=../shared/data STORE_AGENT_EXTRA_DATA=/path/to/extra \\
        python bench/people_counting.py [--profiles shipped,proposed] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from models.people import PersonDetector
from models.people.detector import PersonDetection
from models.people.tiling import TiledPersonDetector, TileSettings
from models.runtime import session_for
from tests.conftest import data_dir
from tests.scene.counting import (
    Clip,
    Image,
    ReplayDetector,
    all_clips,
    detect_all,
    occupancy_abs_error,
    read_frames,
    run_clip,
)

# The shipped settings, each camera's scene declared as a side view (what a store gets without telling the
# agent how the camera looks), against the camera declared as it is (`view: overhead` for a camera looking
# down): the overhead view was chosen on the tuning clips (intel-one-by-one, mot17-02), issue 15.
SHIPPED: dict[str, Any] = {"detector": "nano416", "scene": {"view": "side", "anchor": "bottom"}}
SIDE: dict[str, Any] = {"detector": "nano416", "scene": {"view": "side"}}
OVERHEAD: dict[str, Any] = {"detector": "tiles3x2", "scene": {"view": "overhead"}}


def profile(name: str, clip: Clip) -> dict[str, Any]:
    if name == "shipped":
        return SHIPPED
    return OVERHEAD if clip.view == "overhead" else SIDE


def detectors(threads: int) -> dict[str, Callable[[Image], list[PersonDetection]]]:
    base = PersonDetector(session_for("yolox-nano", data_dir() / "models", threads=threads), score_threshold=0.1)
    return {
        "nano416": base.detect,
        "tiles2x2": TiledPersonDetector(base, TileSettings(cols=2, rows=2)).detect,
        "tiles3x2": TiledPersonDetector(base, TileSettings(cols=3, rows=2)).detect,
    }


def timed_detections(
    frames: list[Image], fn: Callable[[Image], list[PersonDetection]]
) -> tuple[list[list[PersonDetection]], float]:
    """The detector's output on every frame, and its median seconds per frame."""
    times: list[float] = []

    def timed(image: Image) -> list[PersonDetection]:
        t0 = time.perf_counter()
        out = fn(image)
        times.append(time.perf_counter() - t0)
        return out

    return detect_all(frames, timed), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", default="shipped,proposed")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    names = args.profiles.split(",")
    detect = detectors(args.threads)
    print(
        f"# {platform.machine()} {os.cpu_count()} CPUs, {args.threads} onnxruntime thread(s); "
        f"load {os.getloadavg()[0]:.1f}; profiles: {', '.join(names)}"
    )
    print("# ratio = counted / hand count over the annotated frames; occupancy = one zone over the whole view")
    for clip in all_clips():
        frames = read_frames(clip)
        if frames is None:
            print(f"\n## {clip.name}: clip not found ({clip.path}); skipped")
            continue
        h, w = frames[0].shape[:2]
        print(f"\n## {clip.name} [{clip.split}] {clip.view} view, {w}x{h}, {len(frames)} frames")
        cache: dict[str, list[list[PersonDetection]]] = {}
        cost: dict[str, float] = {}
        rows: dict[str, list[str]] = {}
        for name in names:
            chosen = profile(name, clip)
            key = chosen["detector"]
            if key not in cache:
                cache[key], cost[key] = timed_detections(frames, detect[key])
            # The detections are replayed (each detector ran once above): the stage must not tile them again.
            scene = {"anchor": clip.anchor, **chosen["scene"], "tiles": [1, 1]}
            settings: dict[str, Any] = {}
            if clip.name.startswith("mot17"):
                settings["detect_every"] = 1  # 4 and 8 frames: too short to skip frames and still warm up
            kept = [[d for d in f if d.score >= 0.1] for f in cache[key]]
            result = run_clip(clip, frames, ReplayDetector(kept), settings, scene)
            out = rows.setdefault(name, [])
            for line in clip.lines:
                for direction in ("in", "out"):
                    expected = clip.expected(line["name"], direction)
                    if expected or result.crossings[line["name"]][direction]:
                        out.append(
                            f"line {line['name']} {direction}: {result.crossings[line['name']][direction]}/{expected}"
                        )
            if clip.occupancy:
                truth = sum(clip.occupancy.values())
                counted = sum(result.occupancy.get(f, 0) for f in clip.occupancy)
                out.append(
                    f"occupancy: {counted}/{truth} = {counted / truth:.2f} "
                    f"(|err| summed {occupancy_abs_error(clip, result)} over {len(clip.occupancy)} frames)"
                )
            if clip.visits is not None:
                out.append(f"visits: {result.visits}/{clip.visits}")
        for name, out in rows.items():
            print(f"  {name:9s} " + "; ".join(out))
        for key, seconds in cost.items():
            print(f"  detector {key}: {seconds * 1000:.0f} ms/frame median ({1 / seconds:.1f} fps at detect_every 1)")
        if clip.name.startswith("mot17"):
            reference = np.mean(list(clip.occupancy.values()))
            for key, per_frame in cache.items():
                for threshold in (0.35, 0.5):
                    n = np.mean([sum(d.score >= threshold for d in f) for f in per_frame])
                    print(
                        f"  detector {key} alone: {n:.1f} people >= {threshold} per frame vs {reference:.1f} annotated"
                    )


if __name__ == "__main__":
    main()
