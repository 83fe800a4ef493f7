"""YOLOX-nano person detection: letterbox, our own grid decode and non-maximum suppression.

The exported graph ends at the raw head (per-cell offsets and log sizes), so
decoding the grid and NMS are done here in numpy, vectorised over all cells.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

INPUT_SIZE = 416
STRIDES = (8, 16, 32)
PERSON_CLASS = 0
PAD_VALUE = 114

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class PersonDetection:
    """One person box in the original frame's pixels (x1, y1, x2, y2) with its score."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


def letterbox(image: npt.NDArray[np.uint8], size: int = INPUT_SIZE) -> tuple[FloatArray, float]:
    """Resize keeping the aspect ratio into a ``size`` square (top-left aligned, padded with 114).

    Returns the 1x3xSxS float32 tensor (BGR 0-255, as YOLOX was trained) and the scale used.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"letterbox: expected an HxWx3 BGR image, got shape {image.shape}")
    h, w = image.shape[:2]
    scale = min(size / h, size / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
    return tensor, scale


@functools.cache
def _grids(size: int) -> tuple[FloatArray, FloatArray]:
    """Cell origins (N x 2) and strides (N x 1) in the order the head emits them (built once per input size;
    read-only, the decoder only reads them)."""
    grids, strides = [], []
    for stride in STRIDES:
        n = size // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full((n * n, 1), stride))
    cells, cell_strides = np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)
    cells.flags.writeable = cell_strides.flags.writeable = False
    return cells, cell_strides


def decode_yolox(raw: FloatArray, size: int = INPUT_SIZE) -> FloatArray:
    """Raw head output (N x 85) to boxes in input pixels: N x 6 (x1, y1, x2, y2, obj, person score)."""
    if raw.ndim != 2 or raw.shape[1] < 6:
        raise ValueError(f"decode_yolox: expected N x (5 + classes) predictions, got shape {raw.shape}")
    grid, stride = _grids(size)
    if raw.shape[0] != grid.shape[0]:
        raise ValueError(
            f"decode_yolox: {raw.shape[0]} predictions do not match a {size} input ({grid.shape[0]} cells)"
        )
    centre = (raw[:, :2] + grid) * stride
    wh = np.exp(np.clip(raw[:, 2:4], -10.0, 10.0)) * stride
    out = np.empty((raw.shape[0], 6), dtype=np.float32)
    out[:, :2] = centre - wh / 2
    out[:, 2:4] = centre + wh / 2
    out[:, 4] = raw[:, 4]
    out[:, 5] = raw[:, 4] * raw[:, 5 + PERSON_CLASS]
    return out


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU of boxes (x1, y1, x2, y2): len(a) x len(b)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:4] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:4] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    result: FloatArray = (inter / np.maximum(union, 1e-9)).astype(np.float32)
    return result


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression; indices of kept boxes, best first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        if order.size == 1:
            break
        overlaps = iou_matrix(boxes[best : best + 1], boxes[order[1:]])[0]
        order = order[1:][overlaps <= iou_threshold]
    return keep


def postprocess(
    raw: FloatArray, scale: float, frame_w: int, frame_h: int, score_threshold: float, iou_threshold: float
) -> list[PersonDetection]:
    """Decode, threshold, NMS and map back to frame pixels."""
    decoded = decode_yolox(raw)
    candidates = decoded[decoded[:, 5] >= score_threshold]
    if not len(candidates):
        return []
    boxes = candidates[:, :4] / scale
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, frame_w)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, frame_h)
    valid = (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
    boxes, scores = boxes[valid], candidates[valid, 5]
    return [
        PersonDetection(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(scores[i]))
        for i in nms(boxes, scores, iou_threshold)
        for b in (boxes[i],)
    ]


class PersonDetector:
    """YOLOX-nano over an onnxruntime session; returns people only."""

    def __init__(self, session: Any, score_threshold: float = 0.1, iou_threshold: float = 0.45) -> None:
        self.session = session
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self._input = session.get_inputs()[0].name

    def detect(self, image: npt.NDArray[np.uint8]) -> list[PersonDetection]:
        tensor, scale = letterbox(image)
        raw = self.session.run(None, {self._input: tensor})[0][0]
        return postprocess(raw, scale, image.shape[1], image.shape[0], self.score_threshold, self.iou_threshold)
