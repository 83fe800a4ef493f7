"""Quality gates: minimum face size, sharpness and pose from the 5 landmarks.

A frame that fails a gate is never used for a decision or an enrollment; the
reason is named so an operator sees why a photo was refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class QualityThresholds:
    min_face_px: float = 48.0
    min_sharpness: float = 30.0
    max_yaw: float = 0.45
    max_roll_deg: float = 30.0
    pitch_range: tuple[float, float] = (0.25, 0.8)


@dataclass(frozen=True)
class Quality:
    """Measured quality of one face; ``score`` ranks frames (higher is better), ``reason`` is why it failed."""

    size: float
    sharpness: float
    yaw: float
    roll_deg: float
    pitch: float
    score: float
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.reason is None


def pose(landmarks: npt.NDArray[np.floating]) -> tuple[float, float, float]:
    """(yaw, roll in degrees, pitch) proxies from right eye, left eye, nose, mouth corners.

    yaw: nose offset from the eye midpoint along the eye line, in eye distances
    (0 frontal, about +-0.5 at a strong turn); pitch: where the nose sits between
    the eye line (0) and the mouth line (1), about 0.5 when frontal.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    eye_r, eye_l, nose, mouth_r, mouth_l = lm
    eye_vec = eye_l - eye_r
    eye_dist = float(np.hypot(*eye_vec))
    if eye_dist < 1e-6:
        return 1.0, 0.0, 0.0
    roll = float(np.degrees(np.arctan2(eye_vec[1], eye_vec[0])))
    axis = eye_vec / eye_dist
    normal = np.array([-axis[1], axis[0]])
    eye_mid, mouth_mid = (eye_r + eye_l) / 2, (mouth_r + mouth_l) / 2
    yaw = float((nose - eye_mid) @ axis / eye_dist)
    mouth_depth = float((mouth_mid - eye_mid) @ normal)
    pitch = float((nose - eye_mid) @ normal / mouth_depth) if abs(mouth_depth) > 1e-6 else 0.0
    return yaw, roll, pitch


def sharpness(aligned: npt.NDArray[np.uint8]) -> float:
    """Variance of the Laplacian of the aligned crop: scale-free because the crop size is fixed."""
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def gate(box_size: float, sharp: float, yaw: float, roll: float, pitch: float, t: QualityThresholds) -> str | None:
    """Why a face with these measures is refused, or None: the gates in their fixed order.

    Separate from :func:`assess` so an evaluation can replay any threshold set on
    measures stored once (``bench/face_eval.py``) and get the shipped verdicts.
    """
    if box_size < t.min_face_px:
        return f"face too small ({box_size:.0f} px < {t.min_face_px:.0f} px)"
    if sharp < t.min_sharpness:
        return f"too blurry (sharpness {sharp:.0f} < {t.min_sharpness:.0f})"
    if abs(yaw) > t.max_yaw:
        return f"head turned too far (yaw {yaw:+.2f}, limit {t.max_yaw:.2f})"
    if abs(roll) > t.max_roll_deg:
        return f"head tilted too far (roll {roll:+.0f} deg, limit {t.max_roll_deg:.0f})"
    if not t.pitch_range[0] <= pitch <= t.pitch_range[1]:
        return f"head tipped up or down (pitch {pitch:.2f}, range {t.pitch_range[0]}-{t.pitch_range[1]})"
    return None


def assess(
    box_size: float, landmarks: npt.NDArray[np.floating], aligned: npt.NDArray[np.uint8], t: QualityThresholds
) -> Quality:
    yaw, roll, pitch = pose(landmarks)
    sharp = sharpness(aligned)
    reason = gate(box_size, sharp, yaw, roll, pitch, t)
    return Quality(box_size, sharp, yaw, roll, pitch, rank_score(box_size, sharp, yaw, t), reason)


def rank_score(box_size: float, sharp: float, yaw: float, t: QualityThresholds) -> float:
    """How good a frame is for a decision (higher is better): size, sharpness and frontality, each capped."""
    frontal = max(0.0, 1.0 - abs(yaw) / max(t.max_yaw, 1e-6))
    return min(box_size / 112.0, 1.0) * min(sharp / 200.0, 1.0) * (0.5 + 0.5 * frontal)
