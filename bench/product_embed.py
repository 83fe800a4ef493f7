"""Embedding cost per crop: EfficientNet-Lite0 on real shelf photos, single and multi view, at 224 and 384 input.

384 is the default input size (docs/product.md: it lifts top-1 on the session split); 224 is what the
network was trained at and what the agent used before. A catalogue photo costs 16 such crops (augmented
copies), once, when it is first built.

Run: STORE_AGENT_DATA=../shared/data python bench/product_embed.py [--threads 2] [--n 40]
Prints the median and p90 milliseconds per crop (pre-processing included).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.catalog import read_image
from models.product import ProductEmbedder, Views
from tests.conftest import data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=40, help="crops per measurement")
    args = parser.parse_args()
    photos = sorted((data_dir() / "media" / "products" / "shelf").glob("*/*.jpg"))[: args.n]
    images = [read_image(p) for p in photos]
    runs: list[tuple[int, Views]] = [(224, "single"), (384, "single"), (384, "multi")]
    for size, views in runs:
        embedder = ProductEmbedder.load(data_dir() / "models", threads=args.threads, views=views, input_size=size)
        embedder.embed(images[:2])
        times = []
        for image in images:
            start = time.perf_counter()
            embedder.embed([image])
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        p90 = times[int(0.9 * (len(times) - 1))]
        median = statistics.median(times)
        print(f"embed {size} {views:<6} threads={args.threads}: median {median:.1f} ms, p90 {p90:.1f} ms per image")


if __name__ == "__main__":
    main()
