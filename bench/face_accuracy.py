"""Accuracy report on any folder laid out as ``identity/*.jpg``: rank-1, score distributions, FAR at the threshold.

A quick look at a folder, with no split: figures that are reported or used to
choose settings come from ``bench/face_eval.py`` (tuning and reporting
identities kept apart, open-set protocol, gates and tracks).

Usage::

    STORE_AGENT_DATA=../shared/data python bench/face_accuracy.py FOLDER [--embedder sface|mobilefacenet]
        [--threshold 0.40] [--limit-per-id 10]

Every photo is detected (with the enrolment border), aligned and embedded
exactly as enrolment does. Then:

- rank-1 (leave one out): each photo against all the other photos; the best
  template's identity must be its own (identities with at least two photos);
- genuine pairs (same identity) and impostor pairs (different identities):
  cosine percentiles, and the fraction at or above ``--threshold`` (the
  shipped ``pipelines.face.match_threshold``): the true-accept and the
  false-accept rates of one comparison;
- the threshold that would give a false-accept rate of 1e-3 on this folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import get_args

import numpy as np
import numpy.typing as npt

from agent.identity.enrollment import PHOTO_PAD, read_image
from agent.pipelines.face.settings import FaceSettings
from models.face.analyzer import FaceAnalyzer
from models.face.embedder import EmbedderKind

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def embed_folder(
    analyzer: FaceAnalyzer, root: Path, limit: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32], list[str], int]:
    """Embeddings of every usable photo, their identity index, identity names and how many photos failed."""
    people = sorted(p for p in root.iterdir() if p.is_dir())
    if not people:
        raise SystemExit(f"{root}: no identity folders (expected {root}/<identity>/*.jpg)")
    vectors: list[npt.NDArray[np.float32]] = []
    owners: list[int] = []
    failed = 0
    for k, person in enumerate(people):
        photos = sorted(q for q in person.iterdir() if q.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
        for photo in photos:
            image = read_image(str(photo))
            faces = (
                analyzer.analyse(image, pad=PHOTO_PAD, max_faces=1, check_liveness=False) if image is not None else []
            )
            if not faces or faces[0].embedding is None:
                failed += 1
                continue
            vectors.append(faces[0].embedding)
            owners.append(k)
    if len(vectors) < 2:
        raise SystemExit(f"{root}: fewer than two usable photos")
    return np.stack(vectors), np.array(owners, np.int32), [p.name for p in people], failed


def report(vectors: npt.NDArray[np.float32], owners: npt.NDArray[np.int32], threshold: float) -> None:
    sims = vectors @ vectors.T
    n = len(vectors)
    same = owners[:, None] == owners[None, :]
    upper = np.triu(np.ones((n, n), bool), k=1)
    genuine, impostor = sims[same & upper], sims[~same & upper]
    loo = sims.copy()
    np.fill_diagonal(loo, -np.inf)
    has_pair = same.sum(1) > 1
    rank1 = owners[np.argmax(loo, axis=1)] == owners
    print(f"photos {n}, identities {len(set(owners.tolist()))}")
    print(f"rank-1 (leave one out): {rank1[has_pair].mean():.4f} ({int(rank1[has_pair].sum())}/{int(has_pair.sum())})")
    for name, values in (("genuine", genuine), ("impostor", impostor)):
        if values.size == 0:
            print(f"{name}: no pairs")
            continue
        cuts = " ".join(f"p{p}={v:.3f}" for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True))
        print(f"{name:8s} pairs {values.size:7d}: mean {values.mean():.3f}  {cuts}")
    if genuine.size:
        print(f"at threshold {threshold:.2f}: true-accept rate {np.mean(genuine >= threshold):.4f}")
    if impostor.size:
        far = np.mean(impostor >= threshold)
        print(
            f"at threshold {threshold:.2f}: false-accept rate {far:.2e} "
            f"({int((impostor >= threshold).sum())}/{impostor.size} impostor pairs)"
        )
        if impostor.size >= 1000:
            at = float(np.quantile(impostor, 1 - 1e-3))
            tar = float(np.mean(genuine >= at)) if genuine.size else float("nan")
            print(f"threshold for FAR 1e-3 on this folder: {at:.3f} (true-accept rate there {tar:.4f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of identity sub-folders holding photos")
    parser.add_argument("--embedder", choices=get_args(EmbedderKind), default="sface")
    parser.add_argument(
        "--threshold", type=float, default=FaceSettings.model_fields["match_threshold"].default, help="cosine"
    )
    parser.add_argument("--limit-per-id", type=int, default=1000, help="at most this many photos per identity")
    parser.add_argument("--models", type=Path, help="models directory (default: $STORE_AGENT_DATA/models)")
    args = parser.parse_args()
    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    models_dir = args.models or Path(os.environ.get("STORE_AGENT_DATA", "../shared/data")) / "models"
    analyzer = FaceAnalyzer.load(models_dir, embedder=args.embedder)
    started = time.perf_counter()
    vectors, owners, _, failed = embed_folder(analyzer, args.folder, args.limit_per_id)
    took = time.perf_counter() - started
    print(f"{args.folder} with {args.embedder}: {failed} photos without a usable face; {took:.1f} s to embed")
    report(vectors, owners, args.threshold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
