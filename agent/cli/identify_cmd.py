"""``store-agent identify --config C IMAGE...``: every face in photos against the gallery, one JSON line each.

The offline tool for tuning thresholds: it runs the same analyzer and matcher
as the face pipeline (models loaded once for all images) and prints, per face,
the box, landmarks, quality, liveness, best member, score and margin, and
whether the shipped thresholds would accept it. An image with no face prints
one line with ``"faces": 0``; an unreadable one a line with ``"error"``. The
gallery is opened read-only in effect: nothing is enrolled and no match is
audited (no one was identified in the store).

Exit codes: 0 every image read; 65 an image could not be read (the others are still analysed); 69 a model is
not provisioned; 78 the config or the gallery key is unusable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agent.cli import EXIT_CONFIG, EXIT_DATA, EXIT_OK, add_config_option
from agent.identity.enrollment import PHOTO_PAD, read_image
from agent.identity.gallery import GalleryError
from agent.identity.keys import GalleryKeyError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("identify", help="identify the faces in photos (JSON lines; for tuning)")
    add_config_option(parser)
    parser.add_argument("--no-pad", action="store_true", help="detect without the border added for tight crops")
    parser.add_argument("images", nargs="+", help="image files")
    parser.set_defaults(func=run)


def _round(values: Any, digits: int = 1) -> Any:
    return [_round(v, digits) for v in values] if isinstance(values, list | tuple) else round(float(values), digits)


def run(args: argparse.Namespace) -> int:
    from agent.config.loader import load_config
    from agent.pipelines.face.resources import load_analyzer, member_threshold, open_gallery
    from agent.pipelines.face.settings import FaceSettings
    from models.face.match import best

    config = load_config(args.config).config
    settings = config.pipelines.settings(FaceSettings)
    try:
        gallery = open_gallery(settings, Path(config.storage.state_dir))
    except (GalleryError, GalleryKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        matrix = gallery.matrix()
        analyzer = load_analyzer(settings, config.models.options())
        failed = 0
        for path in args.images:
            image = read_image(path)
            if image is None:
                failed += 1
                print(json.dumps({"image": path, "error": "cannot read the image (missing or not an image)"}))
                continue
            faces = analyzer.analyse(image, pad=0.0 if args.no_pad else PHOTO_PAD)
            if not faces:
                print(json.dumps({"image": path, "faces": 0}))
            for index, face in enumerate(faces):
                line: dict[str, Any] = {
                    "image": path,
                    "faces": len(faces),
                    "face": index,
                    "box": _round(face.detection.box),
                    "landmarks": _round(face.detection.landmarks.tolist()),
                    "detection_score": round(face.detection.score, 3),
                    "quality": {
                        "ok": face.quality.ok,
                        "reason": face.quality.reason,
                        "score": round(face.quality.score, 3),
                        "sharpness": round(face.quality.sharpness, 1),
                        "yaw": round(face.quality.yaw, 3),
                    },
                    "liveness": None if face.liveness is None else round(face.liveness, 3),
                    "live": None if face.liveness is None else face.liveness >= settings.liveness_threshold,
                    "member_id": None,
                    "best_member": None,
                    "score": None,
                    "margin": None,
                }
                if face.embedding is not None:
                    scores = best(face.embedding, matrix)
                    accepted = (
                        scores.member_id is not None
                        and scores.score >= member_threshold(settings, len(matrix.members))
                        and scores.margin >= settings.match_margin
                    )
                    line.update(
                        best_member=scores.member_id,
                        score=round(scores.score, 4),
                        margin=round(scores.margin, 4),
                        member_id=scores.member_id if accepted and line["live"] else None,
                    )
                print(json.dumps(line))
        return EXIT_DATA if failed else EXIT_OK
    finally:
        gallery.close()
