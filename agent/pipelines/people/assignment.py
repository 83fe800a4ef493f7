"""Minimum-cost assignment of tracks to detections, without scipy.

scipy.optimize's ``linear_sum_assignment`` was the agent's only use of scipy in the daemon, and importing it
costs about 40 MB of RSS: a fifth of the memory budget of a 2 GB board's agent without Whisper. A tracker
assigns dozens of rows at most, so the textbook Hungarian method (shortest augmenting paths with potentials,
O(n^2 m), vectorised over columns) is fast enough: well under a millisecond per frame.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Indices = npt.NDArray[np.int64]


def linear_sum_assignment(cost: npt.ArrayLike) -> tuple[Indices, Indices]:
    """Rows and columns of a minimum-cost matching of ``min(n, m)`` pairs (as scipy's, rows ascending)."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a matrix, not {c.shape}")
    if c.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if not np.isfinite(c).all():
        raise ValueError("cost matrix has infinite or NaN entries")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, np.int64)  # owner[j]: 1-based row matched to column j (column 0 is the root)
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]
            reduced = c[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            masked = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(masked)) + 1
            delta = masked[j1 - 1]
            done = np.nonzero(used)[0]
            u[owner[done]] += delta
            v[done] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:
            j1 = int(way[j0])
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.nonzero(owner[1:])[0]
    rows = owner[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows, kind="stable")
    return rows[order].astype(np.int64), cols[order].astype(np.int64)
