"""Locate each gait_allinone silhouette in its colour video, to label the probe tracks by clothing.

The shared silhouettes are 192x192 segmentations of a square crop around each
track's box (box grown by 10 % per side, padded to a square), every 4th frame;
they carry no position. This script puts each one back into its frame: a
temporal-median background gives a foreground mask, YOLOX-nano boxes give the
candidate squares, and template matching of the silhouette against the mask
(IoU over shifts and scales around each candidate) finds where it sits; the
tracks of one frame are assigned to candidates by the Hungarian method on the
IoU. The person box is the silhouette's own extent mapped into the frame, so it
lies inside the boxes burned into the video (no box line in a crop).

Output: ``gait_allinone_boxes.json`` (per video, per track: frame -> box) and,
with ``--sheets DIR``, one contact sheet of colour crops per track, which is
what the labels in ``gait_allinone_labels.yaml`` were read from by eye.

Run: ``STORE_AGENT_DATA=... python -m tests.scene.data.gait_allinone_locate [--sheets /tmp/sheets]``
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.pipelines.people.tracker import ByteTracker, TrackerSettings
from models.people import PersonDetector
from models.people.detector import PersonDetection, nms
from models.runtime import session_for
from tests.media import video_frames

ROOT = "media/video/gait_allinone"
VIDEOS = {
    "gallery": "gallery.mp4",
    "probe1": "probe1-After.mp4",
    "probe2": "probe2-After.mp4",
    "probe3": "probe3-After.mp4",
    "probe4": "probe4-After.mp4",
}
HERE = Path(__file__).resolve().parent


def read_video(path: Path) -> list[np.ndarray]:
    frames = list(video_frames(path))
    if not frames:
        raise FileNotFoundError(f"{path}: no frame decoded")
    return frames


def silhouettes(folder: Path) -> dict[str, dict[int, np.ndarray]]:
    """track -> frame -> binary 192x192 mask."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for track_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        masks = {}
        for png in (track_dir / "undefined").glob("*.png"):
            frame = int(png.stem.split("-")[1])
            masks[frame] = (cv2.imread(str(png), cv2.IMREAD_GRAYSCALE) > 127).astype(np.float32)
        out[track_dir.name] = masks
    return out


def detect(detector: PersonDetector, image: np.ndarray) -> list[PersonDetection]:
    """The whole frame, plus square tiles across a landscape frame: its walkers are too small for 416 px."""
    found = [d for d in detector.detect(image) if d.score >= 0.3]
    h, w = image.shape[:2]
    if w > h:
        for x0 in np.linspace(0, w - h, 3).astype(int):
            found += [
                PersonDetection(d.x1 + x0, d.y1, d.x2 + x0, d.y2, d.score)
                for d in detector.detect(np.ascontiguousarray(image[:, x0 : x0 + h]))
                if d.score >= 0.3
            ]
    if not found:
        return []
    boxes = np.array([d.box for d in found], dtype=np.float32)
    keep = nms(boxes, np.array([d.score for d in found], dtype=np.float32), 0.45)
    return [found[i] for i in keep]


def gradient(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return np.asarray(cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)))


def place(mask: np.ndarray, grad: np.ndarray, box: tuple[float, ...]) -> tuple[float, tuple[int, int, int]]:
    """How well the silhouette's outline lies on image edges near a candidate box, and its square (x0, y0, side).

    Template matching of the outline against the gradient magnitude over shifts and three scales around
    the square the demo cut from that box; the score is the mean gradient on the outline over the window's mean.
    """
    h, w = grad.shape
    x1, y1, x2, y2 = box
    base = max(x2 - x1, y2 - y1) * 1.2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    best = (-1.0, (0, 0, 1))
    for factor in (0.9, 1.0, 1.1):
        side = max(16, round(base * factor))
        filled = cv2.resize(mask, (side, side), interpolation=cv2.INTER_NEAREST).astype(np.uint8)
        outline = cv2.morphologyEx(filled, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(np.float32)
        total = float(outline.sum())
        if total < 1:
            continue
        reach = max(6, side // 10)
        wx0, wy0 = round(cx - side / 2) - reach, round(cy - side / 2) - reach
        span = side + 2 * reach
        window = np.zeros((span, span), np.float32)
        sx0, sy0 = max(0, wx0), max(0, wy0)
        sx1, sy1 = min(w, wx0 + span), min(h, wy0 + span)
        if sx1 <= sx0 or sy1 <= sy0:
            continue
        window[sy0 - wy0 : sy1 - wy0, sx0 - wx0 : sx1 - wx0] = grad[sy0:sy1, sx0:sx1]
        score = cv2.matchTemplate(window, outline, cv2.TM_CCORR) / total / max(float(window.mean()), 1e-6)
        dy, dx = np.unravel_index(int(np.argmax(score)), score.shape)
        if score[dy, dx] > best[0]:
            best = (float(score[dy, dx]), (wx0 + int(dx), wy0 + int(dy), side))
    return best


def person_box(mask: np.ndarray, square: tuple[int, int, int]) -> list[float]:
    x0, y0, side = square
    ys, xs = np.nonzero(mask)
    s = side / mask.shape[0]
    return [round(x0 + xs.min() * s, 1), round(y0 + ys.min() * s, 1), round(x0 + (xs.max() + 1) * s, 1),
            round(y0 + (ys.max() + 1) * s, 1)]  # fmt: skip


def locate(data: Path, detector: PersonDetector, video: str) -> dict[str, Any]:
    """Track people with our detector and tracker, then match whole tracks to silhouette tracks.

    Per frame the outline scores are centred per candidate (some boxes are edgier than others);
    summed over the frames two tracks share, the Hungarian method pairs them.
    """
    frames = read_video(data / ROOT / "rgb_result_videos" / VIDEOS[video])
    tracks = silhouettes(data / ROOT / "silhouettes" / video)
    indices = sorted({f for masks in tracks.values() for f in masks if f < len(frames)})
    tracker = ByteTracker(TrackerSettings())
    total: dict[tuple[str, int], float] = {}
    squares: dict[tuple[str, int, int], tuple[int, int, int]] = {}
    for index in indices:
        ours = tracker.update(detect(detector, frames[index]))
        present = [t for t in tracks if index in tracks[t]]
        if not ours or not present:
            continue
        grad = gradient(frames[index])
        score = np.zeros((len(present), len(ours)))
        for i, t in enumerate(present):
            for j, m in enumerate(ours):
                score[i, j], squares[t, m.track_id, index] = place(tracks[t][index], grad, m.box)
        score -= score.mean(axis=0, keepdims=True)
        for i, t in enumerate(present):
            for j, m in enumerate(ours):
                total[t, m.track_id] = total.get((t, m.track_id), 0.0) + float(score[i, j])
    # Greedy on the summed score: each of our tracks goes to one silhouette track; a silhouette track may
    # collect several of ours (our tracker fragments small people) as long as they do not overlap in time.
    owner: dict[int, str] = {}
    taken: dict[str, set[int]] = {t: set() for t in tracks}
    for (t, m), value in sorted(total.items(), key=lambda kv: -kv[1]):
        frames_m = {f for (tt, mm, f) in squares if tt == t and mm == m}
        if m in owner or value <= 0 or len(frames_m & taken[t]) > 2:
            continue
        owner[m] = t
        taken[t] |= frames_m
        print(f"{video} track {t}: our track {m}, score {value:.1f}, {len(frames_m)} frames")
    boxes: dict[str, dict[str, list[float]]] = {t: {} for t in sorted(tracks)}
    for (t, m, f), square in sorted(squares.items()):
        if owner.get(m) == t and str(f) not in boxes[t]:
            boxes[t][str(f)] = person_box(tracks[t][f], square)
    for t in boxes:
        boxes[t] = dict(sorted(boxes[t].items(), key=lambda kv: int(kv[0])))
        print(f"{video} track {t}: {len(boxes[t])} of {len(tracks[t])} frames placed")
    return {"frames": len(frames), "tracks": boxes}


def contact_sheet(data: Path, video: str, located: dict[str, Any], out: Path) -> None:
    """One row per track: 12 colour crops spread over its frames, for labelling by eye."""
    frames = read_video(data / ROOT / "rgb_result_videos" / VIDEOS[video])
    rows = []
    for track, boxes in located["tracks"].items():
        keys = sorted(boxes, key=int)
        if not keys:
            continue
        crops = []
        for k in [keys[int(i)] for i in np.linspace(0, len(keys) - 1, 12)]:
            x1, y1, x2, y2 = (int(v) for v in boxes[k])
            crop = cv2.resize(frames[int(k)][max(0, y1) : y2, max(0, x1) : x2], (48, 112))
            cv2.putText(crop, k, (1, 9), cv2.FONT_HERSHEY_PLAIN, 0.7, (0, 0, 255), 1)
            crops.append(crop)
        row = np.hstack(crops)
        label = np.zeros((112, 40, 3), np.uint8)
        cv2.putText(label, track, (2, 60), cv2.FONT_HERSHEY_PLAIN, 1.0, (255, 255, 255), 1)
        rows.append(np.hstack([label, row]))
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / f"{video}.png"), np.vstack(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sheets", type=Path, help="write one contact sheet per video here")
    args = parser.parse_args()
    data = Path(os.environ.get("STORE_AGENT_DATA", "../shared/data"))
    detector = PersonDetector(session_for("yolox-nano", data / "models"), 0.3)
    result = {video: locate(data, detector, video) for video in VIDEOS}
    (HERE / "gait_allinone_boxes.json").write_text(json.dumps(result, separators=(",", ":")) + "\n")
    if args.sheets:
        for video in VIDEOS:
            contact_sheet(data, video, result[video], args.sheets)


if __name__ == "__main__":
    main()
