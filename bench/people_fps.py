"""Frames per second of the people pipeline per camera at 640x480 on this machine.

Modes: detection + tracking (detect every 1, 2, 3 frames) and with pose + appearance on every
tracked person. Frames are the PETS2009 clip scaled to 640x480. Prints the mean time per
frame (detector and tracking-only frames alternate) as fps.

    STORE_AGENT_DATA=../shared/data python bench/people_fps.py [--frames 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from agent.pipelines.people.tracker import ByteTracker
from models.people import AppearanceEmbedder, PersonDetector, PoseEstimator
from models.runtime import session_for


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    data = Path(os.environ.get("STORE_AGENT_DATA", "../shared/data"))
    models = data / "models"
    capture = cv2.VideoCapture(str(data / "media/video/vtest_pets2009_480x360.avi"))
    frames = []
    while len(frames) < args.frames:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(image, (640, 480)))
    detector = PersonDetector(session_for("yolox-nano", models, threads=args.threads))
    pose = PoseEstimator(session_for("movenet-lightning", models, threads=args.threads))
    appearance = AppearanceEmbedder(session_for("osnet-x0.25-msmt17", models, threads=args.threads))
    print(f"{len(frames)} frames 640x480, {args.threads} thread(s) per model, {os.cpu_count()} CPUs")
    for every in (1, 2, 3):
        for reid in (False, True):
            tracker = ByteTracker()
            times, people = [], []
            for i, image in enumerate(frames):
                t0 = time.perf_counter()
                tracks = tracker.update(detector.detect(image)) if i % every == 0 else tracker.predict()
                if reid and tracks:
                    appearance.embed(image, [t.box for t in tracks])
                    for t in tracks:
                        pose.estimate(image, t.box)
                times.append(time.perf_counter() - t0)
                people.append(len(tracks))
            per_frame = float(np.mean(times))  # mean: detector frames and tracking-only frames alternate
            label = "detect+track" + (" + pose+appearance (all people)" if reid else "")
            print(
                f"detect every {every}: {label:<48} {1 / per_frame:6.1f} fps  "
                f"({per_frame * 1000:.1f} ms/frame, median {statistics.median(people):.0f} people)"
            )


if __name__ == "__main__":
    main()
