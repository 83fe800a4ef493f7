"""Re-identification across cameras on gait_allinone: four people, a gallery video and four probe videos.

Tracks are labelled by clothing in ``data/gait_allinone_labels.yaml`` (how: see that file); their boxes,
every 4th frame, come from ``data/gait_allinone_boxes.json``. Each track gets the signatures the people
pipeline keeps for a member: the mean OSNet embedding and the MoveNet gait signature (pose on every 4th
frame, 7.5 Hz, about what ``reid_every`` gives on a live camera). Each probe track is matched to the four
gallery tracks by gait alone, appearance alone and their fusion as the re-link uses it (``link_score``,
no place term: another camera); rank-1 is the share of probe tracks whose best gallery track is the same
person. The colour videos have the demo's boxes and guesses burned in, so appearance is measured twice:
on the plain person box and with everything outside the person's silhouette greyed out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from agent.pipelines.people.gait import GaitSignature, gait_signature, gait_similarity
from agent.pipelines.people.reid import LostMember, ReidMemory, TrackSignature, link_score
from agent.pipelines.people.settings import PeopleSettings
from models.people import AppearanceEmbedder, PoseEstimator
from models.people.pose import Keypoints
from tests.conftest import require_data
from tests.scene.data.gait_allinone_locate import VIDEOS, read_video, silhouettes

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"
FPS = 30.0
# One-sided floors against references that do not come from this code's own output: chance among four people
# (rank-1 4/16, AUC 0.5) for gait, which the docs call weak; what re-linking needs of appearance (the right person
# first for 7 probes in 8, same/different people separated with AUC 0.95); fusion no worse than appearance alone;
# and, for re-linking, never a wrong or false link (a member's identity on someone else). An improvement passes.
# Measured (2-core x86-64 dev VM), for information: rank-1 gait 7, appearance 16, masked 16, fused 16 of 16; AUC
# 0.57 / 0.995 / 0.996 / 0.995; re-link right 15/16, itself-only linked 15/16.
MODALITIES = ("gait", "appearance", "appearance_masked", "fused")
CHANCE_RANK1, CHANCE_AUC = 4, 0.5
NEEDED_RANK1, NEEDED_AUC = 14, 0.95  # of 16 probe tracks; appearance, masked and fused
NEEDED_RELINK = 13  # right links of 16, with all four people waiting, and with only the right one waiting


def masked(image: np.ndarray, box: list[float], mask: np.ndarray) -> np.ndarray:
    """The frame with everything in the box but the person's silhouette set to grey (the burned-in box lines)."""
    ys, xs = np.nonzero(mask)
    x1, y1, _, y2 = box
    scale = (y2 - y1) / (ys.max() + 1 - ys.min())
    x0, y0 = x1 - xs.min() * scale, y1 - ys.min() * scale
    warp = np.array([[scale, 0, x0], [0, scale, y0]], np.float64)
    h, w = image.shape[:2]
    person = cv2.warpAffine(mask.astype(np.uint8), warp, (w, h), flags=cv2.INTER_NEAREST)
    person = cv2.dilate(person, np.ones((5, 5), np.uint8))
    out = image.copy()
    out[person == 0] = 128
    return out


def track_signature(times: list[float], embeddings: list[np.ndarray], poses: list[Keypoints]) -> TrackSignature:
    """What the pipeline would hold for the track (it keeps the latest 16 embeddings and 48 poses)."""
    signature = TrackSignature()
    for t, e, k in zip(times, embeddings, poses, strict=True):
        signature.add(t, e, k)
    return signature


def unit(vectors: list[np.ndarray]) -> np.ndarray:
    mean = np.mean(vectors, axis=0)
    return np.asarray(mean / np.linalg.norm(mean), np.float32)


@pytest.fixture(scope="module")
def signatures(pose: PoseEstimator, appearance: AppearanceEmbedder) -> dict[tuple[str, str], dict[str, Any]]:
    root = require_data("media/video/gait_allinone")
    located = json.loads((DATA / "gait_allinone_boxes.json").read_text())
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for video, name in VIDEOS.items():
        frames = read_video(root / "rgb_result_videos" / name)
        masks = silhouettes(root / "silhouettes" / video)
        for track, boxes in located[video]["tracks"].items():
            keys = sorted(int(k) for k in boxes)
            crops = [(frames[k], tuple(boxes[str(k)])) for k in keys]
            grey = [(masked(frames[k], boxes[str(k)], masks[track][k]), tuple(boxes[str(k)])) for k in keys]
            poses = [pose.estimate(image, box) for image, box in crops]
            times = [k / FPS for k in keys]
            per_frame = appearance.embed_crops(grey)
            out[video, track] = {
                "appearance": unit(list(appearance.embed_crops(crops))),
                "appearance_masked": unit(list(per_frame)),
                "gait": gait_signature(times, poses),
                "frames": len(keys),
                "track": track_signature(times, list(per_frame), poses),
            }
    return out


def rank1(
    signatures: dict[tuple[str, str], dict[str, Any]],
) -> tuple[dict[str, int], dict[str, list[tuple[float, bool]]]]:
    """Probe tracks whose best gallery track is the right person, and every (score, same person) pair."""
    labels = yaml.safe_load((DATA / "gait_allinone_labels.yaml").read_text())["tracks"]
    gallery = {labels["gallery"][t]: s for (v, t), s in signatures.items() if v == "gallery"}
    hits = dict.fromkeys(MODALITIES, 0)
    pairs: dict[str, list[tuple[float, bool]]] = {m: [] for m in MODALITIES}

    def best(score: dict[str, float | None]) -> str | None:
        known = {p: s for p, s in score.items() if s is not None}
        return max(known, key=lambda p: known[p]) if known else None  # no score at all: not identified

    def gait(a: GaitSignature | None, b: GaitSignature | None) -> float | None:
        return gait_similarity(a, b) if a is not None and b is not None else None

    for (video, track), probe in signatures.items():
        if video == "gallery":
            continue
        truth = labels[video][track]
        scores: dict[str, dict[str, float | None]] = {
            "gait": {p: gait(probe["gait"], g["gait"]) for p, g in gallery.items()},
            "appearance": {p: float(probe["appearance"] @ g["appearance"]) for p, g in gallery.items()},
            "appearance_masked": {
                p: float(probe["appearance_masked"] @ g["appearance_masked"]) for p, g in gallery.items()
            },
            "fused": {
                p: link_score(probe["appearance_masked"], g["appearance_masked"], probe["gait"], g["gait"])[0]
                for p, g in gallery.items()
            },
        }
        for modality, score in scores.items():
            hits[modality] += best(score) == truth
            pairs[modality] += [(v, p == truth) for p, v in score.items() if v is not None]
    return hits, pairs


def auc(pairs: list[tuple[float, bool]]) -> float:
    """Chance that a same-person pair scores above a different-person pair (ties count half)."""
    same = np.array([v for v, s in pairs if s])
    other = np.array([v for v, s in pairs if not s])
    diff = same[:, None] - other[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def test_labels_cover_every_track_and_each_video_has_all_four_people() -> None:
    labels = yaml.safe_load((DATA / "gait_allinone_labels.yaml").read_text())
    located = json.loads((DATA / "gait_allinone_boxes.json").read_text())
    for video in VIDEOS:
        assert sorted(labels["tracks"][video].values()) == sorted(labels["people"]), video
        assert set(labels["tracks"][video]) == set(located[video]["tracks"]), video


def shirt_colour(image: np.ndarray, box: list[float]) -> np.ndarray:
    """Median Lab colour of the chest: the middle of the box, a fifth to two fifths down."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    chest = image[int(y1 + 0.22 * h) : int(y1 + 0.42 * h), int(x1 + 0.3 * w) : int(x2 - 0.3 * w)]
    return np.asarray(np.median(cv2.cvtColor(chest, cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float64), axis=0))


def test_located_crops_agree_with_the_labels_by_shirt_colour() -> None:
    """Every located frame, not only the contact sheets: the chest colour is nearest the labelled person's
    (gallery medians). probe4 004 is seen from the side with a grey backpack over the chest: navy or grey."""
    root = require_data("media/video/gait_allinone")
    labels = yaml.safe_load((DATA / "gait_allinone_labels.yaml").read_text())["tracks"]
    located = json.loads((DATA / "gait_allinone_boxes.json").read_text())
    colours: dict[tuple[str, str], list[np.ndarray]] = {}
    for video, name in VIDEOS.items():
        frames = read_video(root / "rgb_result_videos" / name)
        for track, boxes in located[video]["tracks"].items():
            colours[video, track] = [shirt_colour(frames[int(k)], b) for k, b in boxes.items()]
    reference = {labels["gallery"][t]: np.median(c, axis=0) for (v, t), c in colours.items() if v == "gallery"}
    for (video, track), found in colours.items():
        nearest = [min(reference, key=lambda p: float(np.linalg.norm(c - reference[p]))) for c in found]
        allowed = {"navy", "grey"} if (video, track) == ("probe4", "004") else {labels[video][track]}
        agree = sum(n in allowed for n in nearest) / len(nearest)
        assert agree >= 0.85, f"{video} {track} ({labels[video][track]}): chest colour agrees on {agree:.0%}"


def test_reid_gallery_to_probe_by_gait_appearance_and_fusion(
    signatures: dict[tuple[str, str], dict[str, Any]],
) -> None:
    probes = sum(1 for v, _ in signatures if v != "gallery")
    with_gait = sum(1 for (v, _), s in signatures.items() if v != "gallery" and s["gait"] is not None)
    hits, pairs = rank1(signatures)
    areas = {m: auc(p) for m, p in pairs.items()}
    print(f"\ngait_allinone over {probes} probe tracks (4 people; {with_gait} probes have a gait signature):")
    for modality, n in hits.items():
        same = [v for v, s in pairs[modality] if s]
        other = [v for v, s in pairs[modality] if not s]
        print(
            f"  {modality:18s} rank-1 {n}/{probes} = {n / probes:.2f}, same/different-person AUC {areas[modality]:.3f}"
            f" (same: median {np.median(same):.2f} min {min(same):.2f}; different: median {np.median(other):.2f}"
            f" max {max(other):.2f})"
        )
    assert probes == 16
    assert hits["gait"] > CHANCE_RANK1 and areas["gait"] > CHANCE_AUC, "gait: better than chance among four people"
    for modality in ("appearance", "appearance_masked", "fused"):
        assert hits[modality] >= NEEDED_RANK1 and areas[modality] >= NEEDED_AUC, (modality, hits, areas)
    assert hits["fused"] >= hits["appearance"] - 1 and areas["fused"] >= areas["appearance"] - 0.01


def test_relink_decisions_across_cameras(signatures: dict[tuple[str, str], dict[str, Any]]) -> None:
    """The pipeline's own rule (ReidMemory.match, default settings): each probe track is a new track on another
    camera while lost members wait: all four people, only the other three (any link is false), only itself."""
    labels = yaml.safe_load((DATA / "gait_allinone_labels.yaml").read_text())["tracks"]
    settings = PeopleSettings()
    gallery = {t: s["track"] for (v, t), s in signatures.items() if v == "gallery"}
    outcome = {"all four: right": 0, "all four: wrong": 0, "others only: false link": 0, "itself only: linked": 0}
    for (video, track), probe in signatures.items():
        if video == "gallery":
            continue
        truth = labels[video][track]
        for waiting in ("all", "others", "itself"):
            memory = ReidMemory(
                settings.relink_window_s,
                settings.relink_threshold,
                other_camera_threshold=settings.relink_threshold_other_camera,
            )
            for t, g in gallery.items():
                person = labels["gallery"][t]
                if (waiting == "others" and person == truth) or (waiting == "itself" and person != truth):
                    continue
                memory.add_lost(LostMember("gallery", t, person, g.appearance(), g.gait(), (0.5, 0.5), (0, 0), 0.0))
            link = memory.match(video, probe["track"], (0.5, 0.5), 10.0)
            member = link.lost.member_id if link else None
            if waiting == "all":
                outcome["all four: right"] += member == truth
                outcome["all four: wrong"] += member not in (None, truth)
            elif waiting == "others":
                outcome["others only: false link"] += member is not None
            else:
                outcome["itself only: linked"] += member == truth
    print(f"\nre-link across cameras (threshold {settings.relink_threshold_other_camera}, 16 probe tracks): {outcome}")
    assert outcome["all four: right"] >= NEEDED_RELINK and outcome["itself only: linked"] >= NEEDED_RELINK, outcome
    assert outcome["all four: wrong"] == 0 and outcome["others only: false link"] == 0
