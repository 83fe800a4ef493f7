"""Face benchmark: per-stage ms per face, one 640x480 frame end to end, 1:N over 100k templates.

Usage: STORE_AGENT_DATA=../shared/data python bench/face_bench.py
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from models.face.analyzer import FaceAnalyzer
from models.face.embedder import l2_normalise
from models.face.match import GalleryMatrix, match


def main() -> None:
    data = Path(os.environ.get("STORE_AGENT_DATA", "../shared/data"))
    analyzer = FaceAnalyzer.load(data / "models", threads=1)
    image = cv2.imread(str(data / "media/spoof/image_T1.jpg"))
    frame = cv2.resize(image[:480], (640, 480))
    stages: dict[str, list[float]] = {"detect": [], "align_quality": [], "liveness": [], "embed": [], "total": []}
    for _ in range(30):
        t = time.perf_counter()
        faces = analyzer.analyse(frame)
        stages["total"].append((time.perf_counter() - t) * 1e3)
        for name in ("detect", "align_quality", "liveness", "embed"):
            stages[name].append(getattr(analyzer.times, name))
    print(f"faces in the 640x480 frame: {len(faces)}")
    for name, values in stages.items():
        print(f"{name:14s} median {statistics.median(values):7.2f} ms")
    rng = np.random.default_rng(0)
    gallery = GalleryMatrix(
        l2_normalise(rng.standard_normal((100_000, 128)).astype(np.float32)),
        np.arange(100_000, dtype=np.int32),
        tuple(f"m{i}" for i in range(100_000)),
    )
    probe = l2_normalise(rng.standard_normal(128).astype(np.float32))
    times = []
    for _ in range(50):
        t = time.perf_counter()
        match(probe, gallery, 0.4, 0.05)
        times.append((time.perf_counter() - t) * 1e3)
    print(f"1:N match over 100,000 templates: median {statistics.median(times):.2f} ms")


if __name__ == "__main__":
    main()
