"""Another embedder's vectors for every face of a ``bench/face_eval_cache.py`` cache (same faces, same order).

Usage::

    STORE_AGENT_DATA=../shared/data PYTHONPATH=. python bench/face_embed_extra.py CACHE.npz FOLDER OUT.npz
        [--embedder dlib] [--models DIR]

The faces are not detected again: each stored face's landmarks are aligned the
way the embedder wants (:func:`models.face.analyzer.embedder_crop`) and
embedded with the manifest model, plus the mirror image of the crop. Prints the
embedder's median cost per face on one thread (this machine).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import get_args

import numpy as np

from agent.identity.enrollment import read_image
from models.face.analyzer import EMBEDDER_MODELS, FOLDED, embedder_crop
from models.face.derive import folded_session
from models.face.detector import FaceDetection
from models.face.embedder import EmbedderKind, FaceEmbedder
from models.runtime import session_for


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--embedder", choices=get_args(EmbedderKind), default="dlib")
    parser.add_argument("--models", type=Path)
    args = parser.parse_args()
    models_dir = args.models or Path(os.environ.get("STORE_AGENT_DATA", "../shared/data")) / "models"
    name = EMBEDDER_MODELS[args.embedder]
    session = (
        folded_session(name, models_dir, ("CPUExecutionProvider",), 1)
        if name in FOLDED
        else session_for(name, models_dir, ("CPUExecutionProvider",), 1)
    )
    embedder = FaceEmbedder(session, args.embedder)
    d = dict(np.load(args.cache))
    vectors, mirrored, costs = [], [], []
    last, image = -1, None
    for photo, box, landmarks in zip(d["photo"], d["box"], d["landmarks"], strict=True):
        if photo != last:
            image = read_image(str(args.folder / str(d["path"][photo])))
            last = int(photo)
        assert image is not None
        crop = embedder_crop(image, FaceDetection(tuple(map(float, box)), landmarks, 1.0), args.embedder)  # type: ignore[arg-type]
        started = time.perf_counter()
        vectors.append(embedder.embed([crop])[0])
        costs.append(time.perf_counter() - started)
        mirrored.append(embedder.embed([np.ascontiguousarray(crop[:, ::-1])])[0])
    np.savez_compressed(args.out, embedding=np.array(vectors), embedding_flip=np.array(mirrored))
    print(f"{args.embedder}: {len(vectors)} faces, median {np.median(costs) * 1e3:.1f} ms a face (1 thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
