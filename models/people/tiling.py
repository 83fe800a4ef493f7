"""Tiled person detection: the 416-pixel YOLOX-nano run on overlapping tiles of a large frame.

A 1280x720 frame letterboxed to 416 shrinks people 3x; seen from above a
person is then a 10-15 pixel head-and-shoulders blob, below what the nano
model finds reliably. Running the same model on a grid of overlapping tiles
(plus, optionally, the whole frame for people larger than a tile) gives it
each person at 2x the scale for 4-5x the compute. The functions here are
pure: where the tiles go, and how the detections of several windows become
one list (a person cut by a tile's inner border is dropped when another
window saw more of them).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from models.people.detector import FloatArray, PersonDetection, iou_matrix, nms

logger = logging.getLogger(__name__)

Window = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels


class Detects(Protocol):
    def detect(self, image: npt.NDArray[np.uint8]) -> list[PersonDetection]: ...


def tile_windows(width: int, height: int, cols: int, rows: int, overlap: float = 0.2) -> list[Window]:
    """``cols`` x ``rows`` equal tiles covering the frame, neighbours sharing ``overlap`` of a tile.

    The overlap must hold the largest person a tile should see whole; 0.2 of a
    half-frame tile is 10% of the frame.
    """
    if cols < 1 or rows < 1:
        raise ValueError(f"tile_windows: need at least one column and row, got {cols}x{rows}")
    if not 0.0 <= overlap < 0.5:
        raise ValueError(f"tile_windows: overlap must be in [0, 0.5), got {overlap}")

    def spans(length: int, n: int) -> list[tuple[int, int]]:
        size = length if n == 1 else math.ceil(length / (n - overlap * (n - 1)))
        step = (length - size) / (n - 1) if n > 1 else 0.0
        return [(round(i * step), round(i * step) + size) for i in range(n)]

    return [(x0, y0, x1, y1) for y0, y1 in spans(height, rows) for x0, x1 in spans(width, cols)]


def cut_by_window(box: FloatArray, window: Window, frame_w: int, frame_h: int, margin: float = 2.0) -> bool:
    """Whether a box (frame pixels) touches an edge of its window that is not also an edge of the frame."""
    x0, y0, x1, y1 = window
    return bool(
        (x0 > 0 and box[0] <= x0 + margin)
        or (y0 > 0 and box[1] <= y0 + margin)
        or (x1 < frame_w and box[2] >= x1 - margin)
        or (y1 < frame_h and box[3] >= y1 - margin)
    )


def _span_iou(a0: float, a1: float, b0: float, b1: float) -> float:
    inter = min(a1, b1) - max(a0, b0)
    return max(0.0, inter) / max(max(a1, b1) - min(a0, b0), 1e-9)


def merge_windows(
    boxes: FloatArray,
    scores: FloatArray,
    cut: npt.NDArray[np.bool_],
    window_ids: npt.NDArray[np.int_],
    iou_threshold: float,
    cover: float = 0.6,
    drop_cut: bool = False,
) -> tuple[FloatArray, FloatArray]:
    """Pool the detections of several windows into one set of boxes and scores, best first.

    1. Greedy NMS over all windows.
    2. A detection cut by its window's inner border is dropped when at least
       ``cover`` of its area lies inside a kept whole (uncut) detection: the
       same person seen whole by another window (the two overlap too little
       for IoU-based NMS). With ``drop_cut`` every cut detection is dropped: right
       when the whole frame is one of the windows, since a person larger than
       the tile overlap is then seen whole there, and one smaller than the
       overlap is whole in a neighbouring tile.
    3. Otherwise cut detections left over from different windows that overlap and line
       up across the border (their extents along the border agree, IoU >= 0.5)
       are halves of one person taller or wider than the overlap: joined into
       their union, with the better score.
    """
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    keep = nms(boxes, scores, iou_threshold)
    whole = boxes[[i for i in keep if not cut[i]]]
    pieces: list[int] = []
    out_boxes: list[FloatArray] = []
    out_scores: list[float] = []
    for i in keep:
        if not cut[i]:
            out_boxes.append(boxes[i].copy())
            out_scores.append(float(scores[i]))
            continue
        if drop_cut:
            continue
        b = boxes[i]
        area = float(np.prod(np.clip(b[2:4] - b[:2], 0, None)))
        if len(whole) and area > 0:
            lt = np.maximum(b[:2], whole[:, :2])
            rb = np.minimum(b[2:4], whole[:, 2:4])
            if float(np.prod(np.clip(rb - lt, 0, None), axis=1).max()) / area >= cover:
                continue
        pieces.append(i)
    used: set[int] = set()
    for n, i in enumerate(pieces):
        if i in used:
            continue
        box, score = boxes[i].copy(), float(scores[i])
        for j in pieces[n + 1 :]:
            if j in used or window_ids[j] == window_ids[i]:
                continue
            o = boxes[j]
            overlap_x = min(box[2], o[2]) - max(box[0], o[0])
            overlap_y = min(box[3], o[3]) - max(box[1], o[1])
            if overlap_x <= 0 or overlap_y <= 0:
                continue
            if max(_span_iou(box[0], box[2], o[0], o[2]), _span_iou(box[1], box[3], o[1], o[3])) >= 0.5:
                box = np.concatenate([np.minimum(box[:2], o[:2]), np.maximum(box[2:4], o[2:4])])
                used.add(j)
        out_boxes.append(box)
        out_scores.append(score)
    order = np.argsort(-np.array(out_scores), kind="stable")
    return np.array(out_boxes, np.float32)[order], np.array(out_scores, np.float32)[order]


@dataclass(frozen=True, slots=True)
class TileSettings:
    cols: int = 2
    rows: int = 2
    overlap: float = 0.2
    full_frame: bool = True  # also run on the whole frame (people taller than a tile)
    min_side: int = 960  # frames whose longer side is below this are not tiled
    max_height: float = 0.6  # a tile's detections taller than this fraction of the tile are dropped


class TiledPersonDetector:
    """Runs a person detector on the whole frame and on overlapping tiles, and merges the results.

    Any object with ``detect(image) -> list[PersonDetection]`` works (the
    YOLOX-nano ``PersonDetector``); its own NMS runs per window, this class
    pools the windows. Costs ``cols * rows (+1)`` detector runs per frame.
    """

    def __init__(self, detector: Detects, settings: TileSettings | None = None, iou_threshold: float = 0.45) -> None:
        self.detector = detector
        self.settings = settings or TileSettings()
        self.iou_threshold = iou_threshold

    def windows(self, width: int, height: int) -> list[Window]:
        s = self.settings
        if max(width, height) < s.min_side or s.cols * s.rows == 1:
            return [(0, 0, width, height)]
        tiles = tile_windows(width, height, s.cols, s.rows, s.overlap)
        return [(0, 0, width, height), *tiles] if s.full_frame else tiles

    def detect(self, image: npt.NDArray[np.uint8]) -> list[PersonDetection]:
        h, w = image.shape[:2]
        windows = self.windows(w, h)
        if len(windows) == 1:
            return self.detector.detect(image)
        found: list[tuple[PersonDetection, Window]] = []
        for win in windows:
            x0, y0, x1, y1 = win
            tile = (x0, y0, x1, y1) != (0, 0, w, h)
            for d in self.detector.detect(np.ascontiguousarray(image[y0:y1, x0:x1])):
                if tile and d.y2 - d.y1 > self.settings.max_height * (y1 - y0):
                    continue  # tiles are for small people; a large one is seen whole in the full frame
                found.append((PersonDetection(d.x1 + x0, d.y1 + y0, d.x2 + x0, d.y2 + y0, d.score), win))
        return merge_detections(found, w, h, self.iou_threshold, drop_cut=self.settings.full_frame)


def merge_detections(
    found: Sequence[tuple[PersonDetection, Window]],
    frame_w: int,
    frame_h: int,
    iou_threshold: float,
    drop_cut: bool = False,
) -> list[PersonDetection]:
    """Pool (detection, window it came from) pairs into one list for the frame, best first."""
    if not found:
        return []
    boxes = np.array([d.box for d, _ in found], dtype=np.float32)
    scores = np.array([d.score for d, _ in found], dtype=np.float32)
    cut = np.array([cut_by_window(boxes[i], win, frame_w, frame_h) for i, (_, win) in enumerate(found)])
    ids = {win: n for n, win in enumerate(dict.fromkeys(win for _, win in found))}
    window_ids = np.array([ids[win] for _, win in found])
    merged, merged_scores = merge_windows(boxes, scores, cut, window_ids, iou_threshold, drop_cut=drop_cut)
    return [
        PersonDetection(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(s))
        for b, s in zip(merged, merged_scores, strict=True)
    ]


def pairwise_iou(a: Sequence[PersonDetection], b: Sequence[PersonDetection]) -> FloatArray:
    """IoU of two detection lists (len(a) x len(b)); for evaluation against reference boxes."""
    ba = np.array([d.box for d in a], dtype=np.float32).reshape(-1, 4)
    bb = np.array([d.box for d in b], dtype=np.float32).reshape(-1, 4)
    return iou_matrix(ba, bb)
