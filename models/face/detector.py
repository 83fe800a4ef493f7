"""YuNet face detection (2023mar): letterbox, decode the stride-8/16/32 heads, NMS, 5 landmarks.

The decode follows OpenCV's ``FaceDetectorYN`` for the 2023mar export: per
anchor ``score = sqrt(clamp(cls) * clamp(obj))``, box centre ``(col + dx) *
stride``, size ``exp(dw) * stride``, landmarks ``(col + kx) * stride``.
Landmark order: right eye, left eye, nose tip, right mouth corner, left mouth
corner (the person's right, i.e. image left for a frontal face).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnxruntime as ort

logger = logging.getLogger(__name__)

STRIDES = (8, 16, 32)
#: Side of the square crop on which a face found at low resolution is located precisely.
REFINE_SIZE = 192
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FaceDetection:
    """One detected face in image pixels: box (x, y, w, h), 5 landmarks (5, 2), score in [0, 1]."""

    box: tuple[float, float, float, float]
    landmarks: FloatArray
    score: float

    @property
    def size(self) -> float:
        """The shorter side of the box: what the minimum-face-size gate compares."""
        return min(self.box[2], self.box[3])


def letterbox(image: npt.NDArray[np.uint8], size: tuple[int, int]) -> tuple[FloatArray, float]:
    """Resize keeping aspect ratio into ``size`` (w, h), pad right/bottom; NCHW float BGR 0-255 and the scale."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a BGR image of shape (h, w, 3), got {image.shape}")
    h, w = image.shape[:2]
    scale = min(size[0] / w, size[1] / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR if scale < 1 else cv2.INTER_CUBIC)
    blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)
    return blob, scale


def decode(
    outputs: dict[str, FloatArray], input_size: tuple[int, int], score_threshold: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Anchor outputs -> boxes (N, 4) as x, y, w, h, landmarks (N, 5, 2), scores (N,) in input pixels."""
    boxes, kps, scores = [], [], []
    for stride in STRIDES:
        cols = input_size[0] // stride
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0.0, 1.0)
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0.0, 1.0)
        score = np.sqrt(cls * obj)
        keep = np.nonzero(score >= score_threshold)[0]
        if keep.size == 0:
            continue
        bbox = outputs[f"bbox_{stride}"].reshape(-1, 4)[keep]
        kp = outputs[f"kps_{stride}"].reshape(-1, 5, 2)[keep]
        col = (keep % cols).astype(np.float32)
        row = (keep // cols).astype(np.float32)
        cx = (col + bbox[:, 0]) * stride
        cy = (row + bbox[:, 1]) * stride
        bw = np.exp(bbox[:, 2]) * stride
        bh = np.exp(bbox[:, 3]) * stride
        boxes.append(np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1))
        grid = np.stack([col, row], axis=1)[:, None, :]
        kps.append((kp + grid) * stride)
        scores.append(score[keep])
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros(0, np.float32)
    return (
        np.concatenate(boxes).astype(np.float32),
        np.concatenate(kps).astype(np.float32),
        np.concatenate(scores).astype(np.float32),
    )


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression on x, y, w, h boxes; indices kept, best first."""
    order = np.argsort(-scores)
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    kept: list[int] = []
    while order.size:
        i = int(order[0])
        kept.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return kept


def dynamic_input_size(width: int, height: int, max_side: int) -> tuple[tuple[int, int], float]:
    """Input (w, h) for a dynamic-shape YuNet: the image shrunk to ``max_side`` (never enlarged), sides
    rounded up to a multiple of 32 (the coarsest stride); and the scale applied."""
    scale = min(1.0, max_side / max(width, height))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    return (-(-w // 32) * 32, -(-h // 32) * 32), scale


class YuNetDetector:
    """YuNet on a fixed input (the 640x640 file: frames are letterboxed into it) or a dynamic one.

    With the dynamic-shape file the frame is only shrunk so its longer side is
    ``max_side`` and padded to a multiple of 32: a 640x480 frame at ``max_side``
    320 costs a quarter of the 640x640 run, and a 48 px face is still 24 px,
    well above YuNet's ~10 px floor.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        score_threshold: float = 0.8,
        nms_threshold: float = 0.3,
        top_k: int = 50,
        max_side: int = 640,
    ) -> None:
        self.session = session
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        h, w = inp.shape[2], inp.shape[3]
        self.dynamic = not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0)
        self.input_size = (640, 640) if self.dynamic else (int(w), int(h))
        self.max_side = max_side
        self.output_names = [o.name for o in session.get_outputs()]
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k

    def detect(
        self, image: npt.NDArray[np.uint8], pad: float = 0.0, max_side: int | None = None
    ) -> list[FaceDetection]:
        """Faces in a BGR image, best score first, in the image's pixel coordinates.

        ``pad`` adds a black border of that fraction of the longer side first: YuNet
        misses faces that fill the whole picture (tight crops, ID photos), and a
        25% border brings them back (LFW crops: 21% -> 99% found at score 0.8).
        ``max_side`` overrides the detector's for this call (photos use a larger one).
        """
        offset = 0
        if pad > 0:
            offset = round(max(image.shape[:2]) * pad)
            image = np.asarray(
                cv2.copyMakeBorder(image, offset, offset, offset, offset, cv2.BORDER_CONSTANT, value=(0, 0, 0)),
                dtype=np.uint8,
            )
        input_size = self.input_size
        if self.dynamic:
            input_size, _ = dynamic_input_size(image.shape[1], image.shape[0], max_side or self.max_side)
        blob, scale = letterbox(image, input_size)
        raw: list[Any] = self.session.run(self.output_names, {self.input_name: blob})
        outputs = dict(zip(self.output_names, raw, strict=True))
        boxes, kps, scores = decode(outputs, input_size, self.score_threshold)
        keep = nms(boxes, scores, self.nms_threshold)[: self.top_k]
        return [
            FaceDetection(
                box=(
                    float(boxes[i, 0] / scale - offset),
                    float(boxes[i, 1] / scale - offset),
                    float(boxes[i, 2] / scale),
                    float(boxes[i, 3] / scale),
                ),
                landmarks=(kps[i] / scale - offset).astype(np.float32),
                score=float(scores[i]),
            )
            for i in keep
        ]

    def refine(self, image: npt.NDArray[np.uint8], det: FaceDetection, size: int = REFINE_SIZE) -> FaceDetection:
        """Box and landmarks again from a ``size`` px square crop around ``det`` (dynamic model only).

        Detecting a whole frame at 320 px is cheap but its landmarks are coarse, and
        the embedding is sensitive to alignment: the face is found small and then
        located precisely on a crop at the face's own resolution (about a third of
        the cost of the 320 px pass).
        """
        if not self.dynamic:
            return det
        x, y, w, h = det.box
        side = max(w, h) * 1.8
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = round(cx - side / 2), round(cy - side / 2)
        s = round(side)
        crop = np.zeros((s, s, 3), np.uint8)
        ih, iw = image.shape[:2]
        sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(iw, x0 + s), min(ih, y0 + s)
        if sx1 <= sx0 or sy1 <= sy0:
            return det
        crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
        found = self.detect(crop, max_side=size)
        if not found:
            return det
        best = min(found, key=lambda d: (d.box[0] + d.box[2] / 2 - s / 2) ** 2 + (d.box[1] + d.box[3] / 2 - s / 2) ** 2)
        bx, by, bw, bh = best.box
        return FaceDetection(
            box=(bx + x0, by + y0, bw, bh),
            landmarks=(best.landmarks + np.array([x0, y0], np.float32)).astype(np.float32),
            score=det.score,
        )
