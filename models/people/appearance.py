"""OSNet x0.25 appearance embedding of person crops (256x128), L2-normalised.

Used only in memory to re-link a consented member's track after it was lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from models.vectors import l2_normalise

HEIGHT, WIDTH = 256, 128
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def osnet_input(image: npt.NDArray[np.uint8], box: tuple[float, float, float, float]) -> npt.NDArray[np.float32]:
    """The 3x256x128 normalised RGB tensor of the box (clipped to the frame)."""
    h, w = image.shape[:2]
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x2 - x1 < 2 or y2 - y1 < 2:
        raise ValueError(f"osnet_input: box {box} has no area inside the {w}x{h} frame")
    crop = cv2.resize(image[y1:y2, x1:x2], (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
    rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return np.ascontiguousarray(((rgb - _MEAN) / _STD).transpose(2, 0, 1))


class AppearanceEmbedder:
    """OSNet over an onnxruntime session; one batched run for all boxes of a frame."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._input = session.get_inputs()[0].name

    def embed(
        self, image: npt.NDArray[np.uint8], boxes: Sequence[tuple[float, float, float, float]]
    ) -> npt.NDArray[np.float32]:
        return self.embed_crops([(image, b) for b in boxes])

    def embed_crops(
        self, crops: Sequence[tuple[npt.NDArray[np.uint8], tuple[float, float, float, float]]]
    ) -> npt.NDArray[np.float32]:
        """One batched run for boxes on any frames (an image and a box per crop)."""
        if not crops:
            return np.zeros((0, 512), dtype=np.float32)
        batch = np.stack([osnet_input(image, b) for image, b in crops])
        out = np.asarray(self.session.run(None, {self._input: batch})[0], dtype=np.float32)
        return l2_normalise(out)
