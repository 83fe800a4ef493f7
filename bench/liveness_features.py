"""Score every evaluation sample once and cache what the liveness experiments need.

Usage::

    STORE_AGENT_DATA=/work/shared/data OMP_NUM_THREADS=1 nice -n 10 \
        python bench/liveness_features.py [--cache /work/extra-data/liveness-cache/features.pkl]

For each sample: the detection (box, 5 landmarks, score) and quality verdict
exactly as the shipped analyser makes them (stills with the enrolment border,
video frames without), the shipped fused liveness score, both MiniFASNets'
logits at several crop scales, and a small grey face crop for the texture and
motion signals. The cache lives outside git (it holds third-party images'
derivatives).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.liveness_data import Sample, all_samples
from models.face.analyzer import FaceAnalyzer
from models.face.liveness import liveness_crop

SCALES = (1.0, 1.5, 2.0, 2.7, 4.0)
PHOTO_PAD = 0.25  # agent.identity.enrollment.PHOTO_PAD: what enrolment and identify use on stills
DEFAULT_CACHE = Path("/work/extra-data/liveness-cache/features.pkl")


def frames_of(samples: list[Sample]) -> dict[str, np.ndarray]:
    """Decoded images by sample key (videos read once, sequentially)."""
    out: dict[str, np.ndarray] = {}
    by_video: dict[Path, list[Sample]] = defaultdict(list)
    for s in samples:
        if s.frame >= 0:
            by_video[s.path].append(s)
        else:
            image = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
            if image is not None:
                out[s.key] = image
    for path, wanted in by_video.items():
        index = {s.frame: s for s in wanted}
        cap = cv2.VideoCapture(str(path))
        k = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if k in index:
                out[index[k].key] = frame
            k += 1
        cap.release()
    return out


def describe(analyzer: FaceAnalyzer, sample: Sample, image: np.ndarray) -> dict[str, Any]:
    faces = analyzer.analyse(image, pad=PHOTO_PAD if sample.photo else 0.0, max_faces=1)
    row: dict[str, Any] = {"key": sample.key, "shape": image.shape[:2], "found": bool(faces)}
    if not faces:
        return row
    face = faces[0]
    det = face.detection
    row.update(
        box=tuple(float(v) for v in det.box),
        landmarks=np.asarray(det.landmarks, np.float32),
        det_score=float(det.score),
        quality_ok=face.quality.ok,
        quality_reason=face.quality.reason,
        quality_score=float(face.quality.score),
        sharpness=float(face.quality.sharpness),
        yaw=float(face.quality.yaw),
        shipped=face.liveness,
    )
    logits: dict[tuple[str, float], np.ndarray] = {}
    for name, (session, input_name, _) in zip(("v2", "v1se"), analyzer.liveness.models, strict=True):
        for scale in SCALES:
            crop = liveness_crop(image, det.box, scale)
            blob = crop.transpose(2, 0, 1)[None].astype(np.float32)
            logits[(name, scale)] = np.asarray(session.run(None, {input_name: blob})[0][0], np.float32)
    row["logits"] = logits
    grey = cv2.cvtColor(liveness_crop(image, det.box, 1.0, size=128), cv2.COLOR_BGR2GRAY)
    row["grey128"] = grey
    row["colour80_27"] = liveness_crop(image, det.box, 2.7)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--per-id", type=int, default=10, help="photos per CelebA/LFW identity")
    args = parser.parse_args()
    data = Path(os.environ.get("STORE_AGENT_DATA", "../shared/data"))
    analyzer = FaceAnalyzer.load(data / "models")
    samples = all_samples(data, per_id=args.per_id)
    cache: dict[str, dict[str, Any]] = {}
    if args.cache.is_file():
        with args.cache.open("rb") as f:
            cache = pickle.load(f)
    todo = [s for s in samples if s.key not in cache]
    print(f"{len(samples)} samples, {len(todo)} to score", flush=True)
    t0 = time.perf_counter()
    images = frames_of(todo)
    for i, sample in enumerate(todo):
        image = images.get(sample.key)
        cache[sample.key] = (
            {"key": sample.key, "found": False, "unreadable": True}
            if image is None
            else describe(analyzer, sample, image)
        )
        if (i + 1) % 200 == 0:
            print(f"  {i + 1}/{len(todo)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.cache.with_suffix(".tmp")
    with tmp.open("wb") as f:
        pickle.dump(cache, f)
    tmp.replace(args.cache)
    print(f"cached {len(cache)} rows in {args.cache} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
