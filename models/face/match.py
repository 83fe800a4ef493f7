"""1:N matching: one pure, vectorised cosine search over the whole gallery.

A probe is accepted only when the best member clears ``threshold`` *and*
beats the best different member by ``margin``: a look-alike pair in the
gallery then yields "unknown" rather than the wrong name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


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
    top = int(np.argmax(sims))
    owner = gallery.owners[top]
    others = sims[gallery.owners != owner]
    second = float(others.max()) if others.size else -1.0
    score = float(sims[top])
    margin = score - second if others.size else 1.0
    return Scores(gallery.members[owner], score, margin)


def match(
    embedding: npt.NDArray[np.floating], gallery: GalleryMatrix, threshold: float, margin: float = 0.0
) -> Match | None:
    """The member this embedding belongs to, or None when nobody clears threshold and margin."""
    s = best(embedding, gallery)
    if s.member_id is None or s.score < threshold or s.margin < margin:
        return None
    return Match(s.member_id, s.score, s.margin)
