"""Face benchmark: per-stage medians, per-face total, 1:N over 100k templates, first sight to event.

Usage: STORE_AGENT_DATA=../shared/data python bench/face_bench.py [--threads 1]

- stages: one 640x480 frame with one face through detect / align+quality /
  liveness / embed (the analyzer's own timers), the shipped configuration
  (dynamic YuNet at 320, SFace with folded weights) next to the old one
  (fixed 640x640 YuNet, SFace dequantising on every run);
- 1:N: one probe against 100,000 random unit templates (one float32 matrix,
  one matrix-vector product, a partial sort);
- first sight to event: frames of the enrolled person fed to the face pipeline's
  tracker at 10 fps until ``shopper.identified``; the latency is the wall time
  from the first frame's arrival to the event, computing included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from agent.identity.enrollment import read_image
from agent.pipelines.face.tracker import DecisionSettings, FaceTracker
from models.face.analyzer import FaceAnalyzer
from models.face.detector import YuNetDetector
from models.face.embedder import FaceEmbedder
from models.face.liveness import LivenessModel
from models.face.match import GalleryMatrix, match
from models.runtime import session_for
from models.vectors import l2_normalise

STAGES = ("detect", "align_quality", "liveness", "embed")


def frame_640x480(path: Path) -> npt.NDArray[np.uint8]:
    """The photo placed on a grey 640x480 canvas at a size a shop camera sees (face about 120 px)."""
    image = read_image(str(path))
    if image is None:
        raise SystemExit(f"cannot read {path}")
    scale = 300 / max(image.shape[:2])
    import cv2

    small = np.asarray(cv2.resize(image, None, fx=scale, fy=scale), dtype=np.uint8)
    canvas = np.full((480, 640, 3), 90, np.uint8)
    y, x = (480 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    return canvas


Timings = dict[str, list[float]]


def stage_times(analyzers: list[FaceAnalyzer], frame: npt.NDArray[np.uint8], runs: int) -> list[Timings]:
    """Per-stage ms for each analyzer, runs interleaved so a busy machine slows them alike."""
    values: list[Timings] = [{name: [] for name in (*STAGES, "total")} for _ in analyzers]
    for analyzer in analyzers:
        analyzer.analyse(frame)
    for _ in range(runs):
        for analyzer, timings in zip(analyzers, values, strict=True):
            t = time.perf_counter()
            faces = analyzer.analyse(frame)
            timings["total"].append((time.perf_counter() - t) * 1e3)
            for name in STAGES:
                timings[name].append(getattr(analyzer.times, name))
            if len(faces) != 1 or faces[0].embedding is None:
                raise SystemExit(f"expected one usable face in the bench frame, got {len(faces)}")
    return values


def old_analyzer(models_dir: Path, threads: int) -> FaceAnalyzer:
    """The first-round configuration, for the ratio: fixed 640x640 YuNet, SFace dequantising per run."""
    providers = ("CPUExecutionProvider",)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    raw_sface = ort.InferenceSession(
        str(models_dir / "face_recognition_sface_2021dec_int8bq.onnx"), options, providers=list(providers)
    )
    return FaceAnalyzer(
        YuNetDetector(session_for("face_detection_yunet_2023mar", models_dir, providers, threads)),
        LivenessModel(
            session_for("antispoof_minifasnet_v2", models_dir, providers, threads),
            session_for("antispoof_minifasnet_v1se", models_dir, providers, threads),
        ),
        FaceEmbedder(raw_sface, "sface"),
    )


def one_to_n(n: int = 100_000, dim: int = 128, runs: int = 50) -> float:
    rng = np.random.default_rng(0)
    gallery = GalleryMatrix(
        l2_normalise(rng.standard_normal((n, dim)).astype(np.float32)),
        np.arange(n, dtype=np.int32),
        tuple(f"m{i}" for i in range(n)),
    )
    probe = l2_normalise(rng.standard_normal(dim).astype(np.float32))
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        match(probe, gallery, 0.4, 0.05)
        times.append((time.perf_counter() - t) * 1e3)
    # The floor: reading the same bytes once (the product is memory-bound).
    floor = []
    for _ in range(runs):
        t = time.perf_counter()
        gallery.templates.sum()
        floor.append((time.perf_counter() - t) * 1e3)
    print(f"1:N over {n:,} x {dim} float32: median {statistics.median(times):.2f} ms")
    mb = gallery.templates.nbytes / 1e6
    print(f"  (memory floor: summing the same {mb:.0f} MB takes {statistics.median(floor):.2f} ms)")
    return statistics.median(times)


def first_sight_to_event(analyzer: FaceAnalyzer, data: Path) -> float:
    """Wall ms from the first frame of an enrolled person to ``shopper.identified`` (frames at 10 fps)."""
    enroll = sorted((data / "media/faces/enroll").iterdir())[0]
    photos = sorted(enroll.glob("*.jpg"))
    templates = []
    for photo in photos:
        image = read_image(str(photo))
        if image is None:
            continue
        faces = analyzer.analyse(image, pad=0.25, max_faces=1)
        if faces and faces[0].embedding is not None:
            templates.append(faces[0].embedding)
    gallery = GalleryMatrix(np.stack(templates), np.zeros(len(templates), np.int32), (enroll.name,))
    frame = frame_640x480(photos[-1])
    tracker = FaceTracker("bench", DecisionSettings(), lambda e: match(e, gallery, 0.40, 0.05))
    start = time.perf_counter()
    for i in range(30):
        arrival = start + i * 0.1
        while time.perf_counter() < arrival:
            time.sleep(0.001)
        events = tracker.update(analyzer.analyse(frame), i * 0.1, time.time())
        if events:
            return (time.perf_counter() - start) * 1e3
    raise SystemExit("no event within 30 frames")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per session")
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    data = Path(os.environ.get("STORE_AGENT_DATA", "../shared/data"))
    models_dir = data / "models"
    frame = frame_640x480(data / "media/spoof/image_T1.jpg")
    shipped = FaceAnalyzer.load(models_dir, threads=args.threads)
    mfn = FaceAnalyzer.load(models_dir, threads=args.threads, embedder="mobilefacenet")
    new, old, alt = stage_times([shipped, old_analyzer(models_dir, args.threads), mfn], frame, args.runs)
    print(f"one 640x480 frame, one face, {args.threads} thread(s), {args.runs} interleaved runs (ms):")
    print(f"{'stage':14s} {'shipped':>8s} {'(min)':>8s} {'round 1':>8s} {'(min)':>8s} {'ratio':>6s}")
    for name in (*STAGES, "total"):
        a, b = statistics.median(new[name]), statistics.median(old[name])
        print(f"{name:14s} {a:8.2f} {min(new[name]):8.2f} {b:8.2f} {min(old[name]):8.2f} {b / max(a, 1e-9):6.1f}x")
    print(
        f"embed with MobileFaceNet-192 instead (batch fixed at 2): median {statistics.median(alt['embed']):.2f}"
        f" (min {min(alt['embed']):.2f}) ms"
    )
    one_to_n()
    print(f"first sight to shopper.identified (10 fps, min_frames 3): {first_sight_to_event(shipped, data):.0f} ms")


if __name__ == "__main__":
    main()
