"""Open-set decision maths: thresholds from a target false-accept rate, templates, per-member scores.

Why these exist: a threshold fixed once (``match_threshold: 0.40``) lets false
accepts grow with the gallery, because a stranger is compared with every
member and the best of N impostor scores is what the threshold sees. The rate
that matters in a store is the false-positive identification rate (FPIR): the
fraction of strangers' faces accepted as *some* member. For N members and
independent comparisons ``FPIR = 1 - (1 - FMR)^N``, so the per-member
false-match rate a threshold must give is ``FMR = 1 - (1 - FPIR)^(1/N)``
(about FPIR / N). :func:`threshold_for_rate` turns that rate into a cosine
from impostor scores measured on a tuning split (never the reporting split).

Everything here is pure numpy: ``bench/face_eval.py`` uses it to tune and to
report, and the agent can use it to derive its threshold from the gallery size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from models.vectors import l2_normalise

FloatArray = npt.NDArray[np.float32]


def per_member_rate(fpir: float, members: int) -> float:
    """The false-match rate per member comparison that gives ``fpir`` against ``members`` members."""
    if not 0.0 < fpir < 1.0:
        raise ValueError(f"target FPIR must be in (0, 1), got {fpir}")
    if members < 1:
        raise ValueError(f"a gallery needs at least one member, got {members}")
    return float(1.0 - (1.0 - fpir) ** (1.0 / members))


def threshold_for_rate(impostor_scores: npt.ArrayLike, rate: float) -> float:
    """The lowest threshold at which at most ``rate`` of the impostor scores are accepted (score >= threshold).

    With n scores the smallest rate it can resolve is 1/n: a lower target
    returns just above the highest impostor score (no impostor accepted), which
    is optimistic; callers should check ``rate * n >= 1`` (:func:`resolvable`).
    """
    scores = np.sort(np.asarray(impostor_scores, dtype=np.float64).reshape(-1))
    if scores.size == 0:
        raise ValueError("no impostor scores")
    allowed = int(np.floor(rate * scores.size))  # impostors that may stay at or above the threshold
    if allowed >= scores.size:
        return float(scores[0])
    return float(np.nextafter(scores[scores.size - allowed - 1], np.inf))


def resolvable(rate: float, n_scores: int) -> bool:
    """Whether ``n_scores`` impostor scores can measure a rate this low (at least one impostor at that rate)."""
    return rate * n_scores >= 1.0


def member_scores(
    probes: FloatArray, templates: FloatArray, owners: npt.NDArray[np.integer], n_members: int
) -> FloatArray:
    """(P, n_members) best cosine of each probe against each member's templates (-1 for a member with none)."""
    sims = np.asarray(probes, np.float32) @ np.asarray(templates, np.float32).T
    out = np.full((sims.shape[0], n_members), -1.0, np.float32)
    for member in range(n_members):
        cols = np.flatnonzero(owners == member)
        if cols.size:
            out[:, member] = sims[:, cols].max(axis=1)
    return out


def best_two(scores: FloatArray) -> tuple[npt.NDArray[np.intp], FloatArray, FloatArray]:
    """Per row: the best member, its score, and its margin over the second-best member (1.0 with one member)."""
    if scores.shape[1] == 1:
        return np.zeros(len(scores), np.intp), scores[:, 0].copy(), np.ones(len(scores), np.float32)
    order = np.argsort(-scores, axis=1)[:, :2]
    rows = np.arange(len(scores))
    top, second = scores[rows, order[:, 0]], scores[rows, order[:, 1]]
    return order[:, 0], top, (top - second).astype(np.float32)


def templates_with_mirrors(embeddings: FloatArray, mirrored: FloatArray | None) -> FloatArray:
    """Enrolment templates: each photo's embedding and, when given, its mirror image's (two views of one photo)."""
    if mirrored is None:
        return np.asarray(embeddings, np.float32)
    return np.concatenate([np.asarray(embeddings, np.float32), np.asarray(mirrored, np.float32)])


def fuse(parts: Sequence[FloatArray], weights: Sequence[float]) -> FloatArray:
    """One unit vector per row from several embedders' unit vectors: cosine of fused = weighted sum of cosines.

    Each part is scaled by sqrt(weight / sum of weights) and the parts are
    concatenated, so the matcher, gallery and tracker keep working on one vector.
    """
    if len(parts) != len(weights) or not parts:
        raise ValueError("need one weight per embedding part")
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError(f"weights must be non-negative with a positive sum, got {list(weights)}")
    scaled = [
        l2_normalise(np.asarray(p, np.float32)) * np.float32(np.sqrt(w / total))
        for p, w in zip(parts, weights, strict=True)
    ]
    return np.concatenate(scaled, axis=-1).astype(np.float32)


#: How the threshold giving one false accept per 1,000 strangers moves with the gallery size, per e-fold of
#: members (SFace, tuning identities, docs/face-eval.md: 10 members 0.449, 50 0.472, 200 0.514).
GALLERY_SLOPE = 0.022
#: The gallery size a configured threshold is for.
REFERENCE_MEMBERS = 50


def gallery_threshold(threshold: float, members: int, slope: float = GALLERY_SLOPE) -> float:
    """``threshold`` (set for ``REFERENCE_MEMBERS``) moved for a gallery of ``members``: a stranger is compared
    with every member, so the best impostor score rises with the log of the gallery's size. Bounded to +-0.1."""
    shift = slope * float(np.log(max(members, 1) / REFERENCE_MEMBERS))
    return threshold + min(0.1, max(-0.1, shift))
