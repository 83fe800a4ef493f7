"""Face embedders on aligned crops: SFace (128-d), MobileFaceNet (192-d), dlib's ResNet (128-d), L2-normalised.

SFace and MobileFaceNet take the ArcFace-aligned 112x112 crop. SFace wants
NCHW RGB 0-255 (what OpenCV's ``FaceRecognizerSF`` feeds it); the
MobileFaceNet export wants NHWC RGB scaled to [-1, 1] and has its batch fixed
at 2, so single faces are padded. dlib's ResNet (:mod:`models.face.dlib_resnet`)
takes dlib's 150x150 face chip (:data:`models.face.align.REFERENCE_DLIB_150`),
NCHW RGB 0-255; its graph subtracts the means itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from models.vectors import l2_normalise

if TYPE_CHECKING:
    import onnxruntime as ort

logger = logging.getLogger(__name__)

EmbedderKind = Literal["sface", "mobilefacenet", "dlib"]
#: Side of the aligned crop each embedder takes.
CROP_SIDE: dict[EmbedderKind, int] = {"sface": 112, "mobilefacenet": 112, "dlib": 150}


class FaceEmbedder:
    """Turns aligned BGR crops (``CROP_SIDE[kind]`` square) into unit-length embeddings."""

    def __init__(self, session: ort.InferenceSession, kind: EmbedderKind) -> None:
        self.session = session
        self.kind = kind
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = session.get_outputs()[0].name
        batch = inp.shape[0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        self.dim = int(session.get_outputs()[0].shape[-1])
        # The int8bq SFace export still lists its weights as graph inputs; the graph only
        # takes their *shape* (the values come from dequantised initializers), so zeros of
        # the declared shape are the correct feed.
        self.shape_feeds: dict[str, npt.NDArray[np.float32]] = {
            extra.name: np.zeros([int(d) for d in extra.shape], np.float32) for extra in session.get_inputs()[1:]
        }

    def _prepare(self, crops: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        side = CROP_SIDE[self.kind]
        for crop in crops:
            if crop.shape != (side, side, 3):
                raise ValueError(f"{self.kind}: expected an aligned {side}x{side}x3 crop, got {crop.shape}")
        rgb = np.stack([c[:, :, ::-1] for c in crops]).astype(np.float32)
        if self.kind in ("sface", "dlib"):
            return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))
        return np.ascontiguousarray((rgb - 127.5) / 128.0)

    def embed(self, crops: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        """(N, dim) unit vectors for N aligned crops."""
        if not crops:
            return np.zeros((0, self.dim), np.float32)
        batch = self._prepare(crops)
        step = self.fixed_batch or len(batch)
        out = []
        for start in range(0, len(batch), step):
            chunk = batch[start : start + step]
            n = len(chunk)
            if n < step:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - n, axis=0)])
            result = self.session.run([self.output_name], {self.input_name: chunk, **self.shape_feeds})[0]
            out.append(np.asarray(result)[:n])
        return l2_normalise(np.concatenate(out))
