"""1:N matching: one pure, vectorised cosine search over the whole gallery.

A probe is accepted only when the best member clears ``threshold`` *and*
beats the best different member by ``margin``: a look-alike pair in the
gallery then yields "unknown" rather than the wrong name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: Candidates ranked after the one matrix-vector product; the runner-up member is almost always among them.
TOP_K = 16


@dataclass(frozen=True)
class GalleryMatrix:
    """Unit-length templates (N, D) float32 and, per row, the index of its member in ``members``."""

    templates: npt.NDArray[np.float32]
    owners: npt.NDArray[np.int32]
    members: tuple[str, ...]

    @staticmethod
    def empty(dim: int) -> GalleryMatrix:
        return GalleryMatrix(np.zeros((0, dim), np.float32), np.zeros(0, np.int32), ())

    def __len__(self) -> int:
        return len(self.templates)


@dataclass(frozen=True)
class Match:
    member_id: str
    score: float
    margin: float


@dataclass(frozen=True)
class Scores:
    """Best member, its score and the margin to the best other member (even when rejected)."""

    member_id: str | None
    score: float
    margin: float


def best(embedding: npt.NDArray[np.floating], gallery: GalleryMatrix) -> Scores:
    """Best and second-best member by cosine; margin is 1.0 when there is only one member."""
    if len(gallery) == 0:
        return Scores(None, -1.0, 0.0)
    probe = np.asarray(embedding, dtype=np.float32).reshape(-1)
    if probe.shape[0] != gallery.templates.shape[1]:
        raise ValueError(
            f"embedding has {probe.shape[0]} dims, the gallery holds {gallery.templates.shape[1]}-d templates"
        )
    sims = gallery.templates @ probe
    k = min(TOP_K, len(sims))
    top_k = np.argpartition(sims, len(sims) - k)[len(sims) - k :]
    top_k = top_k[np.argsort(-sims[top_k])]
    top = int(top_k[0])
    owner = gallery.owners[top]
    score = float(sims[top])
    other = top_k[gallery.owners[top_k] != owner]
    if other.size:
        second = float(sims[other[0]])
    else:  # the best member holds all k best templates: look at everyone else (rare, one masked pass)
        others = sims[gallery.owners != owner]
        if not others.size:
            return Scores(gallery.members[owner], score, 1.0)
        second = float(others.max())
    return Scores(gallery.members[owner], score, score - second)


def match(
    embedding: npt.NDArray[np.floating], gallery: GalleryMatrix, threshold: float, margin: float = 0.0
) -> Match | None:
    """The member this embedding belongs to, or None when nobody clears threshold and margin."""
    s = best(embedding, gallery)
    if s.member_id is None or s.score < threshold or s.margin < margin:
        return None
    return Match(s.member_id, s.score, s.margin)
