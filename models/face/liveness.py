"""MiniFASNet liveness: V2 on a 2.7x face crop and V1SE on a 4.0x crop, softmax scores fused.

Crops follow Silent-Face-Anti-Spoofing's ``CropImage``: the face box is scaled
about its centre (the scale shrinks when the image is too small to hold it)
and shifted back inside the image, then resized to 80x80, BGR 0-255. Class 1
is "real"; the fused score is the mean of the two models' real probabilities.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnxruntime as ort

Box = tuple[float, float, float, float]


def scaled_crop_box(image_w: int, image_h: int, box: Box, scale: float) -> tuple[int, int, int, int]:
    """Silent-Face's crop: (left, top, right, bottom) inclusive pixel bounds of the scaled box."""
    x, y, bw, bh = box
    bw, bh = max(bw, 1.0), max(bh, 1.0)
    scale = min((image_h - 1) / bh, (image_w - 1) / bw, scale)
    nw, nh = bw * scale, bh * scale
    cx, cy = x + bw / 2, y + bh / 2
    left, top, right, bottom = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if left < 0:
        right -= left
        left = 0
    if top < 0:
        bottom -= top
        top = 0
    if right > image_w - 1:
        left -= right - image_w + 1
        right = image_w - 1
    if bottom > image_h - 1:
        top -= bottom - image_h + 1
        bottom = image_h - 1
    return max(int(left), 0), max(int(top), 0), int(right), int(bottom)


def liveness_crop(image: npt.NDArray[np.uint8], box: Box, scale: float, size: int = 80) -> npt.NDArray[np.uint8]:
    h, w = image.shape[:2]
    left, top, right, bottom = scaled_crop_box(w, h, box, scale)
    crop = image[top : bottom + 1, left : right + 1]
    return np.asarray(cv2.resize(crop, (size, size)), dtype=np.uint8)


def softmax(logits: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: npt.NDArray[np.float64] = e / e.sum(axis=-1, keepdims=True)
    return out


def fuse(logits_v2: npt.NDArray[np.floating], logits_v1se: npt.NDArray[np.floating]) -> float:
    """Mean probability of class 1 (real) over the two models."""
    return float((softmax(logits_v2)[..., 1] + softmax(logits_v1se)[..., 1]).mean() / 2)


class LivenessModel:
    """Both MiniFASNet models; ``score`` is the fused probability that the face is live."""

    def __init__(self, v2: ort.InferenceSession, v1se: ort.InferenceSession) -> None:
        self.models = tuple(
            (session, session.get_inputs()[0].name, scale) for session, scale in ((v2, 2.7), (v1se, 4.0))
        )

    def score(self, image: npt.NDArray[np.uint8], box: Box) -> float:
        logits = []
        for session, input_name, scale in self.models:
            crop = liveness_crop(image, box, scale)
            blob = crop.transpose(2, 0, 1)[None].astype(np.float32)
            logits.append(session.run(None, {input_name: blob})[0])
        return fuse(logits[0], logits[1])
