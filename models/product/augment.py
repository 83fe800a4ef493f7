"""Augmented copies of a catalogue reference photo, so the catalogue whitening learns what a shelf photo varies in.

Catalogue whitening (agent/catalog/whitening.py) estimates, from the
reference photos, which embedding directions are nuisance (framing, tilt,
light) rather than product identity. Five or six photos per SKU are too few
for that in 1280 dimensions, and they were all taken in one session; these
copies add framings and lighting that the store's cameras will produce. They
are deterministic (the same photo always gives the same rows, so cached
embeddings stay valid).

The set was chosen on the tuning part of the session split
(bench/product_accuracy.py, docs/product.md): geometric copies (crops, off-centre
crops, small rotations) carried the gain; colour copies added a little; JPEG,
blur and low-resolution copies added nothing and are not used.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

ImageBGR = npt.NDArray[np.uint8]

#: Changes whenever the set below changes, so cached reference embeddings are recomputed.
AUGMENT_VERSION = 1


def centre(image: ImageBGR, fraction: float, dx: float = 0.0, dy: float = 0.0) -> ImageBGR:
    """The central ``fraction`` of each side, shifted by ``dx``/``dy`` of the width/height (clamped inside)."""
    h, w = image.shape[:2]
    ch, cw = max(8, round(h * fraction)), max(8, round(w * fraction))
    y = int(np.clip((h - ch) // 2 + dy * h, 0, h - ch))
    x = int(np.clip((w - cw) // 2 + dx * w, 0, w - cw))
    return image[y : y + ch, x : x + cw]


def rotated(image: ImageBGR, degrees: float) -> ImageBGR:
    """Rotated about the centre (reflected borders), then the central 80 % so little border remains."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    out = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return centre(np.asarray(out, dtype=np.uint8), 0.8)


def recoloured(image: ImageBGR, gains: tuple[float, float, float]) -> ImageBGR:
    """Per-channel (B, G, R) gains, then the central 80 %."""
    scaled = image.astype(np.float32) * np.asarray(gains, dtype=np.float32)
    return centre(np.clip(scaled, 0, 255).astype(np.uint8), 0.8)


def reference_views(image: ImageBGR) -> list[ImageBGR]:
    """The 16 copies of one reference photo that are embedded (their mean is the photo's search row)."""
    flipped = image[:, ::-1]
    out = [image, flipped]
    for fraction in (0.8, 0.6):
        crop = centre(image, fraction)
        out += [crop, crop[:, ::-1]]
    out += [centre(image, 0.7, dx, dy) for dx, dy in ((-0.12, -0.12), (0.12, -0.12), (-0.12, 0.12), (0.12, 0.12))]
    out += [rotated(image, 10.0), rotated(image, -10.0)]
    out += [recoloured(image, g) for g in ((0.6, 0.6, 0.6), (1.4, 1.4, 1.4), (0.85, 1.0, 1.15), (1.15, 1.0, 0.85))]
    return [np.ascontiguousarray(v) for v in out]


N_REFERENCE_VIEWS = 16
