"""Constant-velocity Kalman filter over (centre x, centre y, aspect ratio, height), as in SORT/ByteTrack.

Noise scales with the box height, so small far-away people and large near
ones are tracked with the same relative uncertainty.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]
Matrix = npt.NDArray[np.float64]

_POS_WEIGHT = 1.0 / 20
_VEL_WEIGHT = 1.0 / 160


def box_to_xyah(box: tuple[float, float, float, float]) -> Vector:
    x1, y1, x2, y2 = box
    h = max(y2 - y1, 1e-6)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / h, h], dtype=np.float64)


def xyah_to_box(state: Vector) -> tuple[float, float, float, float]:
    cx, cy, a, h = (float(v) for v in state[:4])
    w = a * h
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


class KalmanBoxFilter:
    """Stateless filter maths; each track keeps its own mean and covariance."""

    def __init__(self) -> None:
        self.motion = np.eye(8)
        for i in range(4):
            self.motion[i, 4 + i] = 1.0
        self.observe = np.eye(4, 8)

    def initiate(self, measurement: Vector) -> tuple[Vector, Matrix]:
        mean = np.r_[measurement, np.zeros(4)]
        h = measurement[3]
        std = [2 * _POS_WEIGHT * h, 2 * _POS_WEIGHT * h, 1e-2, 2 * _POS_WEIGHT * h,
               10 * _VEL_WEIGHT * h, 10 * _VEL_WEIGHT * h, 1e-5, 10 * _VEL_WEIGHT * h]  # fmt: skip
        return mean, np.diag(np.square(std))

    def predict(self, mean: Vector, cov: Matrix) -> tuple[Vector, Matrix]:
        h = mean[3]
        std = [_POS_WEIGHT * h, _POS_WEIGHT * h, 1e-2, _POS_WEIGHT * h,
               _VEL_WEIGHT * h, _VEL_WEIGHT * h, 1e-5, _VEL_WEIGHT * h]  # fmt: skip
        mean = self.motion @ mean
        cov = self.motion @ cov @ self.motion.T + np.diag(np.square(std))
        return mean, cov

    def update(self, mean: Vector, cov: Matrix, measurement: Vector) -> tuple[Vector, Matrix]:
        h = mean[3]
        noise = np.diag(np.square([_POS_WEIGHT * h, _POS_WEIGHT * h, 1e-1, _POS_WEIGHT * h]))
        projected_mean = self.observe @ mean
        projected_cov = self.observe @ cov @ self.observe.T + noise
        gain = np.linalg.solve(projected_cov, self.observe @ cov).T
        mean = mean + gain @ (measurement - projected_mean)
        cov = cov - gain @ projected_cov @ gain.T
        return mean, cov
