"""Gait signature from a sequence of pose keypoints: stride rhythm, body proportions, joint angles.

No pretrained gait network is usable offline, so the signature is hand-made
from MoveNet keypoints over a walking window: the stride period from the
autocorrelation of the ankle separation, limb-length ratios (scale-free), and
statistics of knee and elbow angles. It lives in memory only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.people.pose import Keypoints

# COCO keypoint indices
L_SH, R_SH, L_EL, R_EL, L_WR, R_WR, L_HIP, R_HIP, L_KN, R_KN, L_AN, R_AN = 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16
MIN_SCORE = 0.2
MIN_FRAMES = 8
STEP_S = (0.3, 0.9)  # seconds per step, slow to brisk walking

FEATURES = (
    "stride_period_s", "stride_amplitude", "thigh_shin", "upper_fore_arm", "shoulder_torso", "hip_torso",
    "leg_torso", "knee_mean", "knee_range", "elbow_mean", "arm_swing",
)  # fmt: skip
# Typical spread of each feature between people, used to put them on one scale.
_SCALES = np.array([0.25, 0.25, 0.15, 0.2, 0.12, 0.1, 0.2, 12.0, 15.0, 15.0, 0.2], dtype=np.float64)


@dataclass(frozen=True)
class GaitSignature:
    values: npt.NDArray[np.float64]  # one per FEATURES entry; NaN where not measurable
    frames: int


def _angle(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], c: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Angle at b (degrees) for each row."""
    u, v = a - b, c - b
    cos = np.sum(u * v, axis=1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-9)
    out: npt.NDArray[np.float64] = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    return out


def stride_period(signal: npt.NDArray[np.float64], dt: float) -> float:
    """Dominant period (s) of a roughly periodic signal by autocorrelation; NaN when there is none.

    The ankle separation peaks twice per gait cycle, so an autocorrelation peak is a step and the
    stride is two steps. The highest peak at a walking cadence (a step of STEP_S) is taken: the
    first peak above noise is often a half-step wobble of the keypoints.
    """
    x = signal - signal.mean()
    if len(x) < MIN_FRAMES or not np.any(x) or dt <= 0:
        return float("nan")
    ac = np.correlate(x, x, mode="full")[len(x) - 1 :]
    ac = ac / ac[0]
    lo, hi = max(1, int(STEP_S[0] / dt)), min(len(ac) - 2, int(np.ceil(STEP_S[1] / dt)))
    peaks = [lag for lag in range(lo, hi + 1) if ac[lag] > ac[lag - 1] and ac[lag] >= ac[lag + 1] and ac[lag] > 0.1]
    if not peaks:
        return float("nan")
    return 2 * max(peaks, key=lambda lag: ac[lag]) * dt


def gait_signature(times: Sequence[float], poses: Sequence[Keypoints]) -> GaitSignature | None:
    """Signature of one walking window; None when too few frames have usable legs."""
    if len(times) != len(poses):
        raise ValueError(f"gait_signature: {len(times)} times for {len(poses)} poses")
    good = [
        i
        for i, k in enumerate(poses)
        if np.all(k.score[[L_SH, R_SH, L_HIP, R_HIP, L_KN, R_KN, L_AN, R_AN]] >= MIN_SCORE)
    ]
    if len(good) < MIN_FRAMES:
        return None
    xy = np.stack([poses[i].xy for i in good]).astype(np.float64)  # T x 17 x 2
    t = np.asarray([times[i] for i in good], dtype=np.float64)
    shoulder_mid = (xy[:, L_SH] + xy[:, R_SH]) / 2
    hip_mid = (xy[:, L_HIP] + xy[:, R_HIP]) / 2
    torso = np.maximum(np.linalg.norm(shoulder_mid - hip_mid, axis=1), 1e-6)

    def seg(a: int, b: int) -> npt.NDArray[np.float64]:
        length: npt.NDArray[np.float64] = np.linalg.norm(xy[:, a] - xy[:, b], axis=1)
        return length

    thigh = (seg(L_HIP, L_KN) + seg(R_HIP, R_KN)) / 2
    shin = (seg(L_KN, L_AN) + seg(R_KN, R_AN)) / 2
    upper = (seg(L_SH, L_EL) + seg(R_SH, R_EL)) / 2
    fore = (seg(L_EL, L_WR) + seg(R_EL, R_WR)) / 2
    ankle_sep = seg(L_AN, R_AN) / torso
    # Resample the ankle separation on a uniform clock before the autocorrelation.
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    if dt > 0:
        uniform = np.arange(t[0], t[-1], dt)
        period = stride_period(np.interp(uniform, t, ankle_sep), dt)
    else:
        period = float("nan")
    knees = np.concatenate(
        [_angle(xy[:, L_HIP], xy[:, L_KN], xy[:, L_AN]), _angle(xy[:, R_HIP], xy[:, R_KN], xy[:, R_AN])]
    )
    elbows = np.concatenate(
        [_angle(xy[:, L_SH], xy[:, L_EL], xy[:, L_WR]), _angle(xy[:, R_SH], xy[:, R_EL], xy[:, R_WR])]
    )
    swing = np.abs(xy[:, L_WR, 0] - xy[:, R_WR, 0]) / torso
    values = np.array(
        [
            period,
            float(np.percentile(ankle_sep, 90) - np.percentile(ankle_sep, 10)),
            float(np.median(thigh / np.maximum(shin, 1e-6))),
            float(np.median(upper / np.maximum(fore, 1e-6))),
            float(np.median(seg(L_SH, R_SH) / torso)),
            float(np.median(seg(L_HIP, R_HIP) / torso)),
            float(np.median((thigh + shin) / torso)),
            float(np.mean(knees)),
            float(np.percentile(knees, 90) - np.percentile(knees, 10)),
            float(np.mean(elbows)),
            float(np.percentile(swing, 90) - np.percentile(swing, 10)),
        ]
    )
    return GaitSignature(values=values, frames=len(good))


def gait_similarity(a: GaitSignature, b: GaitSignature) -> float:
    """0..1: exp of minus the mean absolute difference in units of typical between-person spread."""
    both = ~(np.isnan(a.values) | np.isnan(b.values))
    if not np.any(both):
        return 0.0
    diff = np.abs(a.values[both] - b.values[both]) / _SCALES[both]
    return float(np.exp(-np.mean(diff)))
