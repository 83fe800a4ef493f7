"""Measure every face in a folder of identity photos once, with every gate open, and keep the measures.

Usage::

    STORE_AGENT_DATA=../shared/data PYTHONPATH=. python bench/face_eval_cache.py FOLDER OUT.npz
        [--embedder sface] [--limit-per-id N]

``FOLDER`` is laid out as ``identity/*.jpg``. Each photo goes through the
shipped :class:`~models.face.analyzer.FaceAnalyzer` exactly as enrolment and
``store-agent identify`` call it (``pad=PHOTO_PAD``, liveness on), except that
the quality thresholds are wide open so that every face gets its liveness and
embedding: ``bench/face_eval.py`` then replays the shipped gates (and any other
gate setting) with :func:`models.face.quality.gate` on the stored measures,
without running the models again. Per face it stores the detection (box,
landmarks, score), the quality measures, the liveness, the embedding of the
aligned crop and of its mirror image (for flipped enrolment templates).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import get_args

import cv2
import numpy as np

from agent.identity.enrollment import PHOTO_PAD, read_image
from models.face.align import align_face
from models.face.analyzer import FaceAnalyzer
from models.face.embedder import EmbedderKind
from models.face.quality import QualityThresholds

#: Every gate open: the evaluation replays the real thresholds on the stored measures.
OPEN = QualityThresholds(min_face_px=1.0, min_sharpness=0.0, max_yaw=100.0, max_roll_deg=180.0, pitch_range=(-1e9, 1e9))
MAX_FACES = 5
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def thumbnail(crop: np.ndarray) -> np.ndarray:
    """A 24x24 grey, zero-mean unit-norm copy of the aligned face: finds the same photo filed under two identities
    without asking any embedder (``bench/face_eval.py`` cleans labels with it)."""
    grey = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), (24, 24), interpolation=cv2.INTER_AREA)
    g = grey.astype(np.float32).ravel()
    g = (g - g.mean()) / (g.std() + 1e-6)
    return np.asarray(g / np.sqrt(g.size), np.float32)


def photos_of(root: Path, limit: int) -> list[tuple[str, Path]]:
    """(identity, photo) pairs in a fixed order: identities sorted, photos sorted by name, ``limit`` each."""
    out: list[tuple[str, Path]] = []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(q for q in person.iterdir() if q.suffix.lower() in PHOTO_SUFFIXES)[:limit]
        out += [(person.name, q) for q in photos]
    return out


def build(analyzer: FaceAnalyzer, root: Path, limit: int) -> dict[str, np.ndarray]:
    photos = photos_of(root, limit)
    if not photos:
        raise SystemExit(f"{root}: no identity folders with photos")
    rows: dict[str, list[object]] = {
        k: []
        for k in (
            "photo",
            "face",
            "score",
            "box",
            "landmarks",
            "size",
            "sharpness",
            "yaw",
            "roll",
            "pitch",
            "liveness",
            "embedding",
            "embedding_flip",
            "thumb",
        )
    }
    n_faces = np.zeros(len(photos), np.int32)
    for index, (_, path) in enumerate(photos):
        image = read_image(str(path))
        if image is None:
            continue
        faces = analyzer.analyse(image, pad=PHOTO_PAD, max_faces=MAX_FACES)
        n_faces[index] = len(faces)
        for k, face in enumerate(faces):
            assert face.embedding is not None and face.liveness is not None
            crop = align_face(image, face.detection.landmarks)
            flipped = analyzer.embedder.embed([np.ascontiguousarray(crop[:, ::-1])])[0]
            q = face.quality
            for key, value in (
                ("photo", index),
                ("face", k),
                ("score", face.detection.score),
                ("box", face.detection.box),
                ("landmarks", face.detection.landmarks),
                ("size", q.size),
                ("sharpness", q.sharpness),
                ("yaw", q.yaw),
                ("roll", q.roll_deg),
                ("pitch", q.pitch),
                ("liveness", face.liveness),
                ("embedding", face.embedding),
                ("embedding_flip", flipped),
                ("thumb", thumbnail(crop)),
            ):
                rows[key].append(value)
        if index % 250 == 0:
            print(f"  {index}/{len(photos)}", file=sys.stderr, flush=True)
    out: dict[str, np.ndarray] = {k: np.asarray(v, np.float32) for k, v in rows.items()}
    out["photo"] = np.asarray(rows["photo"], np.int32)
    out["face"] = np.asarray(rows["face"], np.int32)
    out["n_faces"] = n_faces
    out["identity"] = np.array([who for who, _ in photos])
    out["path"] = np.array([str(p.relative_to(root)) for _, p in photos])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--embedder", choices=get_args(EmbedderKind), default="sface")
    parser.add_argument("--limit-per-id", type=int, default=1000)
    parser.add_argument("--models", type=Path, help="models directory (default: $STORE_AGENT_DATA/models)")
    args = parser.parse_args()
    models_dir = args.models or Path(os.environ.get("STORE_AGENT_DATA", "../shared/data")) / "models"
    analyzer = FaceAnalyzer.load(models_dir, embedder=args.embedder, thresholds=OPEN)
    started = time.perf_counter()
    data = build(analyzer, args.folder, args.limit_per_id)
    took = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **data)  # type: ignore[arg-type]
    n = len(data["path"])
    print(f"{args.folder}: {n} photos, {len(data['photo'])} faces, {took:.0f} s ({took / n * 1e3:.0f} ms a photo)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
