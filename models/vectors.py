"""Vector helpers shared by every embedding model (face, appearance, product) and the searches over them."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def l2_normalise(vectors: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Rows (or one vector) scaled to unit length as float32, so a dot product is the cosine similarity.

    A zero row stays zero.
    """
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    out: npt.NDArray[np.float32] = v / np.maximum(norms, 1e-12)
    return out
