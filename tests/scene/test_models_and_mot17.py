"""Person model wrappers (golden tests on small arrays, real frames) and a MOT17 tracker-metrics smoke test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from agent.pipelines.people.gait import gait_signature, gait_similarity, stride_period
from agent.pipelines.people.tracker import ByteTracker
from models.people.detector import decode_yolox, iou_matrix, letterbox, nms
from models.people.pose import Keypoints, square_crop
from tests.conftest import require_data


def test_decode_places_a_cell_prediction_at_its_grid_position() -> None:
    raw = np.zeros((3549, 85), np.float32)
    # cell (x=3, y=2) of the stride-8 grid (52 x 52): index 2 * 52 + 3; offsets 0.5, size exp(1) * 8
    raw[2 * 52 + 3, :4] = [0.5, 0.5, 1.0, 2.0]
    raw[2 * 52 + 3, 4:6] = [0.9, 0.8]
    out = decode_yolox(raw)
    cx, cy, w, h = 3.5 * 8, 2.5 * 8, np.e * 8, np.e**2 * 8
    np.testing.assert_allclose(out[2 * 52 + 3, :4], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], rtol=1e-5)
    assert out[2 * 52 + 3, 5] == pytest.approx(0.72)
    # first cell of the stride-32 grid comes after 52*52 + 26*26 cells
    raw[2704 + 676, :4] = [0, 0, 0, 0]
    assert decode_yolox(raw)[2704 + 676, :4].tolist() == [-16.0, -16.0, 16.0, 16.0]
    with pytest.raises(ValueError, match="3548 predictions do not match"):
        decode_yolox(raw[:-1])


def test_nms_and_iou() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    assert nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), 0.5) == [0, 2]
    assert iou_matrix(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(81 / 119)


def test_letterbox_and_square_crop() -> None:
    image = np.full((360, 480, 3), 200, np.uint8)
    tensor, scale = letterbox(image)
    assert tensor.shape == (1, 3, 416, 416) and scale == pytest.approx(416 / 480)
    assert tensor[0, 0, 400, 0] == 114 and tensor[0, 0, 0, 0] == 200  # padded below the image
    crop, x0, y0, side = square_crop(image, (10, 20, 30, 100), margin=0.0, size=192)
    assert crop.shape == (192, 192, 3) and side == 80 and (x0, y0) == (-20, 20)
    assert crop[96, 0].tolist() == [0, 0, 0] and crop[96, 96].tolist() == [200, 200, 200]
    with pytest.raises(ValueError, match="empty box"):
        square_crop(image, (10, 10, 10, 50))


def test_real_models_on_a_pets_frame(pets_frames: list[np.ndarray], detector: Any, pose: Any, appearance: Any) -> None:
    image = pets_frames[100]
    people = detector.detect(image)
    confident = [p for p in people if p.score > 0.5]
    assert 6 <= len(confident) <= 14, f"{len(confident)} people found on PETS frame 100"
    tall = max(confident, key=lambda p: p.y2 - p.y1)
    k = pose.estimate(image, tall.box)
    ankles, nose = k.xy[15:17, 1].mean(), k.xy[0, 1]
    assert nose < ankles and tall.y1 - 5 <= nose and ankles <= tall.y2 + 5  # upright, inside the box
    emb = appearance.embed(image, [p.box for p in confident])
    assert emb.shape == (len(confident), 512)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-4)
    again = appearance.embed(pets_frames[102], [tall.box])
    assert float(emb[confident.index(tall)] @ again[0]) > 0.8  # same person two frames later


def test_gait_signature_of_a_synthetic_walker() -> None:
    """A side-view stick figure whose feet swing at 1 Hz: the stride period comes out near 1 s."""
    fps, poses, times = 30.0, [], []
    for i in range(90):
        t = i / fps
        xy = np.zeros((17, 2), np.float32)
        xy[[5, 6]] = [[-10, 0], [10, 0]]
        xy[[7, 8]] = [[-12, 15], [12, 15]]
        xy[[9, 10]] = [[-12 + 5 * np.sin(2 * np.pi * t), 0], [12 - 5 * np.sin(2 * np.pi * t), 0]]
        xy[[9, 10], 1] = 30
        xy[[11, 12]] = [[-7, 40], [7, 40]]
        xy[[13, 14]] = [[-7, 60], [7, 60]]
        swing = 12 * np.sin(2 * np.pi * t)
        xy[[15, 16]] = [[swing, 80], [-swing, 80]]  # seen from the side: the feet pass each other
        poses.append(Keypoints(xy=xy, score=np.ones(17, np.float32)))
        times.append(t)
    sig = gait_signature(times, poses)
    assert sig is not None and sig.values[0] == pytest.approx(1.0, abs=0.1)
    assert gait_similarity(sig, sig) == pytest.approx(1.0)
    assert np.isnan(stride_period(np.ones(20), 0.1))


def _mot_boxes(path: Path, frame: int) -> dict[int, tuple[float, float, float, float]]:
    out = {}
    for line in path.read_text().splitlines():
        f, tid, x, y, w, h, conf, cls, vis = (float(v) for v in line.split(",")[:9])
        if int(f) == frame and conf > 0 and int(cls) == 1 and vis >= 0.3:
            out[int(tid)] = (x, y, x + w, y + h)
    return out


@pytest.mark.parametrize("sequence", ["MOT17-02-FRCNN", "MOT17-04-FRCNN"])
def test_mot17_mini_tracker_metrics(sequence: str, detector: Any) -> None:
    """Smoke test of tracker metrics (recall, precision, ID switches) on the MOT17 excerpts' ground truth."""
    root = require_data(f"media/video/mot17_mini/{sequence}")
    tracker = ByteTracker()
    last: dict[int, int] = {}
    tp = fp = fn = switches = 0
    for img in sorted((root / "img1").glob("*.jpg")):
        image = cv2.imread(str(img))
        tracks = tracker.update(detector.detect(image))
        gt = _mot_boxes(root / "gt" / "gt.txt", int(img.stem))
        if not gt:
            continue
        gt_ids = list(gt)
        iou = iou_matrix(np.array([gt[i] for i in gt_ids], np.float32), np.array([t.box for t in tracks], np.float32))
        rows, cols = linear_sum_assignment(-iou) if iou.size else ([], [])
        matched = [(gt_ids[r], tracks[c].track_id) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= 0.5]
        tp += len(matched)
        fn += len(gt) - len(matched)
        fp += len(tracks) - len(matched)
        for g, t in matched:
            switches += int(g in last and last[g] != t)
            last[g] = t
    recall, precision = tp / (tp + fn), tp / max(tp + fp, 1)
    mota = 1 - (fn + fp + switches) / (tp + fn)
    print(f"{sequence}: recall {recall:.2f} precision {precision:.2f} MOTA {mota:.2f} ID switches {switches}")
    assert tp > 0 and precision > 0.5 and switches <= 2
