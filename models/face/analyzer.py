"""Detection -> quality -> alignment -> liveness -> embedding for every face in one image.

One ``FaceAnalyzer`` holds the shared sessions; the face pipeline, enrollment
and ``identify`` all use it so that a photo and a video frame are treated the
same way. Liveness and embedding run only on faces that pass the quality gates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from models.face.align import REFERENCE_DLIB_150, align_face
from models.face.derive import folded_session
from models.face.detector import FaceDetection, YuNetDetector
from models.face.embedder import CROP_SIDE, EmbedderKind, FaceEmbedder
from models.face.liveness import LivenessModel
from models.face.quality import Quality, QualityThresholds, assess
from models.runtime import session_for

if TYPE_CHECKING:
    import onnxruntime as ort

logger = logging.getLogger(__name__)

DEFAULT_DETECTOR = "face_detection_yunet_2023mar_dynamic"
#: Photos (enrollment, ``identify``) are detected at up to this many pixels on the longer side.
PHOTO_MAX_SIDE = 640
#: Models whose weights are folded at load rather than dequantised on every run.
FOLDED = frozenset({"face_recognition_sface_2021dec_int8bq"})

EMBEDDER_MODELS: dict[EmbedderKind, str] = {
    "sface": "face_recognition_sface_2021dec_int8bq",
    "mobilefacenet": "mobilefacenet_192",
    "dlib": "dlib_face_recognition_resnet_v1",
}
#: The two MiniFASNet liveness models, fused.
LIVENESS_MODELS = ("antispoof_minifasnet_v2", "antispoof_minifasnet_v1se")


def model_names(detector_model: str = DEFAULT_DETECTOR, embedder: EmbedderKind = "sface") -> list[str]:
    """Every manifest model ``FaceAnalyzer.load`` loads with these arguments."""
    return [detector_model, *LIVENESS_MODELS, EMBEDDER_MODELS[embedder]]


def embedder_crop(image: npt.NDArray[np.uint8], det: FaceDetection, kind: EmbedderKind) -> npt.NDArray[np.uint8]:
    """The aligned crop the embedder ``kind`` takes (dlib's chip geometry differs from ArcFace's)."""
    if kind == "dlib":
        return align_face(image, det.landmarks, CROP_SIDE[kind], REFERENCE_DLIB_150)
    return align_face(image, det.landmarks)


@dataclass
class FaceObservation:
    """Everything measured about one face in one image. ``embedding`` is None when a gate failed."""

    detection: FaceDetection
    quality: Quality
    liveness: float | None = None
    embedding: npt.NDArray[np.float32] | None = field(default=None, repr=False)


@dataclass
class StageTimes:
    """Milliseconds spent per stage on the last call (for benchmarks and health)."""

    detect: float = 0.0
    align_quality: float = 0.0
    liveness: float = 0.0
    embed: float = 0.0


class FaceAnalyzer:
    def __init__(
        self,
        detector: YuNetDetector,
        liveness: LivenessModel,
        embedder: FaceEmbedder,
        thresholds: QualityThresholds | None = None,
    ) -> None:
        self.detector = detector
        self.liveness = liveness
        self.embedder = embedder
        self.thresholds = thresholds or QualityThresholds()
        self.times = StageTimes()

    @staticmethod
    def load(
        models_dir: Path,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int = 1,
        detector_model: str = DEFAULT_DETECTOR,
        embedder: EmbedderKind = "sface",
        detection_threshold: float = 0.8,
        thresholds: QualityThresholds | None = None,
        detection_max_side: int = 320,
    ) -> FaceAnalyzer:
        """Sessions from the manifest (verified by sha256, created once, warmed up).

        The block-quantised SFace file gets its weights folded at load
        (:mod:`models.face.derive`): the same embeddings at a fraction of the cost.
        """

        def session(name: str) -> ort.InferenceSession:
            return session_for(name, models_dir, providers, threads)

        embed_name = EMBEDDER_MODELS[embedder]
        embed_session = (
            folded_session(embed_name, models_dir, providers, threads) if embed_name in FOLDED else session(embed_name)
        )
        return FaceAnalyzer(
            YuNetDetector(session(detector_model), score_threshold=detection_threshold, max_side=detection_max_side),
            LivenessModel(*(session(name) for name in LIVENESS_MODELS)),
            FaceEmbedder(embed_session, embedder),
            thresholds,
        )

    def mirrored_embedding(self, image: npt.NDArray[np.uint8], detection: FaceDetection) -> npt.NDArray[np.float32]:
        """The embedding of the face's aligned crop flipped left-right: a second enrolment template from the same
        photo (it raised identifications by 0.2-0.6 points on the tuning identities, docs/face-eval.md)."""
        crop = embedder_crop(image, detection, self.embedder.kind)
        vector: npt.NDArray[np.float32] = self.embedder.embed([np.ascontiguousarray(crop[:, ::-1])])[0]
        return vector

    def analyse(
        self,
        image: npt.NDArray[np.uint8],
        pad: float = 0.0,
        max_faces: int = 10,
        check_liveness: bool = True,
        wanted: Callable[[FaceDetection], bool] | None = None,
    ) -> list[FaceObservation]:
        """All faces, best detection first; gated faces carry their reason and no embedding.

        ``wanted`` lets a caller skip liveness and embedding for faces it has
        already decided about (a member standing at the till costs one detection
        per frame, not the whole chain).
        """
        t0 = time.perf_counter()
        max_side = max(PHOTO_MAX_SIDE, self.detector.max_side) if pad > 0 else None
        detections = self.detector.detect(image, pad=pad, max_side=max_side)[:max_faces]
        coarse = max_side is None and self.detector.dynamic and max(image.shape[:2]) > self.detector.max_side
        detections = [
            self.detector.refine(image, d)
            if coarse and d.size >= self.thresholds.min_face_px and (wanted is None or wanted(d))
            else d
            for d in detections
        ]
        t1 = time.perf_counter()
        observations: list[FaceObservation] = []
        aligned: list[npt.NDArray[np.uint8]] = []
        for det in detections:
            crop = align_face(image, det.landmarks)
            observations.append(FaceObservation(det, assess(det.size, det.landmarks, crop, self.thresholds)))
            aligned.append(crop)
        t2 = time.perf_counter()
        passed = [i for i, o in enumerate(observations) if o.quality.ok and (wanted is None or wanted(o.detection))]
        if check_liveness:
            for i in passed:
                observations[i].liveness = self.liveness.score(image, observations[i].detection.box)
        t3 = time.perf_counter()
        if passed:
            crops = (
                [embedder_crop(image, detections[i], self.embedder.kind) for i in passed]
                if CROP_SIDE[self.embedder.kind] != 112
                else [aligned[i] for i in passed]
            )
            vectors = self.embedder.embed(crops)
            for i, vec in zip(passed, vectors, strict=True):
                observations[i].embedding = vec
        t4 = time.perf_counter()
        self.times = StageTimes((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3)
        return observations
