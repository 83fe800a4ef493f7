"""5-point similarity alignment onto the ArcFace 112x112 template, the input both embedders expect."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

#: Canonical landmark positions in a 112x112 crop (InsightFace / SFace convention).
REFERENCE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


#: Where YuNet's 5 points fall in dlib's 150x150 face chip (``get_face_chip(..., size=150, padding=0.25)``, the
#: input of its ResNet): medians over 226 CelebA photos chipped by dlib's own detector and 5-point shape predictor,
#: then run through YuNet (spread 2.5-6 px). Aligning YuNet's points onto these reproduces dlib's chips.
REFERENCE_DLIB_150 = np.array(
    [[45.05, 45.35], [99.70, 46.06], [71.89, 75.11], [48.15, 99.07], [94.18, 100.17]], dtype=np.float64
)


def similarity_transform(src: npt.NDArray[np.floating], dst: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """Least-squares rotation + uniform scale + translation mapping ``src`` onto ``dst`` (Umeyama); 2x3 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"need matching (n >= 2, 2) point sets, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1] = -1
    rot = u @ np.diag(sign) @ vt
    var = (s**2).sum() / len(src)
    if var <= 0:
        raise ValueError("landmarks are degenerate (all at one point)")
    scale = (sigma * sign).sum() / var
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = dst_mean - scale * rot @ src_mean
    return matrix


def align_face(
    image: npt.NDArray[np.uint8],
    landmarks: npt.NDArray[np.floating],
    size: int = 112,
    reference: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.uint8]:
    """Warp the face so its 5 landmarks land on the reference points; a BGR ``size`` x ``size`` crop.

    ``reference`` defaults to the ArcFace template scaled to ``size``; dlib's ResNet wants
    :data:`REFERENCE_DLIB_150` at 150.
    """
    target = REFERENCE_112 * (size / 112.0) if reference is None else reference
    matrix = similarity_transform(landmarks, target)
    out = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return np.asarray(out, dtype=np.uint8)
