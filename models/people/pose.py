"""MoveNet lightning keypoints on one person crop.

MoveNet is a single-person model; run on a square crop around a tracked box it
gives 17 COCO keypoints that the gait signature is computed from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

INPUT_SIZE = 192
KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Keypoints:
    """17 keypoints in frame pixels: ``xy`` is 17 x 2, ``score`` is 17 confidences in 0..1."""

    xy: npt.NDArray[np.float32]
    score: npt.NDArray[np.float32]


def square_crop(
    image: npt.NDArray[np.uint8], box: tuple[float, float, float, float], margin: float = 0.1, size: int = INPUT_SIZE
) -> tuple[npt.NDArray[np.uint8], float, float, float]:
    """A ``size`` square crop centred on ``box`` (grown by ``margin``), zero-padded outside the frame.

    Returns the crop and (x0, y0, side) of the square in frame pixels, to map keypoints back.
    """
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"square_crop: empty box {box}")
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    x0, y0 = cx - side / 2, cy - side / 2
    scale = size / side
    # An affine warp crops, pads and resizes in one step.
    matrix = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], dtype=np.float64)
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return crop.astype(np.uint8), x0, y0, side


class PoseEstimator:
    """MoveNet lightning over an onnxruntime session."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._input = session.get_inputs()[0].name

    def estimate(self, image: npt.NDArray[np.uint8], box: tuple[float, float, float, float]) -> Keypoints:
        crop, x0, y0, side = square_crop(image, box)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        out = self.session.run(None, {self._input: rgb[None].astype(np.int32)})[0].reshape(17, 3)
        xy = np.stack([x0 + out[:, 1] * side, y0 + out[:, 0] * side], axis=1).astype(np.float32)
        return Keypoints(xy=xy, score=out[:, 2].astype(np.float32))
