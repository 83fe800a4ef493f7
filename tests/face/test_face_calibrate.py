"""Open-set decision maths (models/face/calibrate.py) and the replayable quality gate, on small arrays."""

from __future__ import annotations

import numpy as np
import pytest

from models.face.calibrate import (
    best_two,
    fuse,
    member_scores,
    per_member_rate,
    resolvable,
    templates_with_mirrors,
    threshold_for_rate,
)
from models.face.quality import QualityThresholds, assess, gate, pose, rank_score, sharpness


def test_per_member_rate_is_the_gallery_share_of_the_target() -> None:
    rate = per_member_rate(1e-3, 50)
    assert 1e-3 / 50 <= rate < 1e-3 / 50 * 1.001  # 1 - (1 - p)^(1/N) is just above p / N
    assert 1 - (1 - rate) ** 50 == pytest.approx(1e-3, rel=1e-9)
    assert per_member_rate(1e-3, 1) == pytest.approx(1e-3)
    with pytest.raises(ValueError):
        per_member_rate(0.0, 10)
    with pytest.raises(ValueError):
        per_member_rate(1e-3, 0)


def test_threshold_for_rate_admits_at_most_the_rate() -> None:
    scores = np.linspace(0.0, 0.999, 1000)
    for rate in (0.1, 0.01, 0.005, 0.001):
        thr = threshold_for_rate(scores, rate)
        assert np.mean(scores >= thr) <= rate
        assert np.mean(scores >= np.nextafter(thr, -1) - 1e-3) > rate or rate * 1000 < 1  # the lowest such threshold
    assert threshold_for_rate(scores, 1e-4) > scores.max()  # below 1/n: nobody admitted
    assert not resolvable(1e-4, scores.size) and resolvable(1e-3, scores.size)
    with pytest.raises(ValueError):
        threshold_for_rate([], 0.1)


def test_member_scores_take_each_members_best_template_and_margin_the_runner_up() -> None:
    templates = np.eye(4, dtype=np.float32)
    owners = np.array([0, 0, 1, 2])
    probe = np.array([[0.1, 0.8, 0.6, 0.0]], np.float32)
    scores = member_scores(probe, templates, owners, 4)
    assert scores.tolist() == [[pytest.approx(0.8), pytest.approx(0.6), 0.0, -1.0]]
    best, top, margin = best_two(scores)
    assert best.tolist() == [0] and top[0] == pytest.approx(0.8) and margin[0] == pytest.approx(0.2)
    one = best_two(scores[:, :1])
    assert one[2].tolist() == [1.0]


def test_mirrored_templates_double_the_gallery_rows() -> None:
    e = np.ones((3, 4), np.float32)
    assert templates_with_mirrors(e, None).shape == (3, 4)
    assert templates_with_mirrors(e, -e).shape == (6, 4)


def test_fused_cosine_is_the_weighted_sum_of_the_parts() -> None:
    rng = np.random.default_rng(0)
    a1, a2 = rng.normal(size=(2, 128)), rng.normal(size=(2, 128))
    b1, b2 = rng.normal(size=(2, 64)), rng.normal(size=(2, 64))
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    f = fuse([a1, b1], [0.7, 0.3])
    g = fuse([a2, b2], [0.7, 0.3])
    assert np.allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-6)
    want = 0.7 * np.sum(unit(a1) * unit(a2), 1) + 0.3 * np.sum(unit(b1) * unit(b2), 1)
    assert np.allclose(np.sum(f * g, 1), want, atol=1e-5)
    with pytest.raises(ValueError):
        fuse([a1], [0.5, 0.5])


def test_gate_gives_the_verdict_assess_gives() -> None:
    """bench/face_eval.py replays gates on stored measures: the verdict must be assess()'s, in the same order."""
    rng = np.random.default_rng(1)
    t = QualityThresholds()
    base = np.array([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]])
    for k in range(60):
        landmarks = base + rng.normal(scale=6.0, size=base.shape)
        crop = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
        if k % 3 == 0:
            crop[:] = 128  # flat: fails the sharpness gate
        size = float(rng.uniform(20, 120))
        q = assess(size, landmarks, crop, t)
        yaw, roll, pitch = pose(landmarks)
        assert gate(size, sharpness(crop), yaw, roll, pitch, t) == q.reason
        assert rank_score(size, q.sharpness, yaw, t) == pytest.approx(q.score)


def test_threshold_per_gallery_moves_the_match_threshold_with_the_gallery_size() -> None:
    """``pipelines.face.threshold_per_gallery``: the configured cosine is for 50 members; a bigger gallery needs a
    higher one (a stranger's best of N impostor scores grows with N), a smaller one a lower one; off: as set."""
    from agent.pipelines.face.resources import member_threshold
    from agent.pipelines.face.settings import FaceSettings

    on, off = FaceSettings(), FaceSettings(threshold_per_gallery=False)
    assert member_threshold(on, 50) == pytest.approx(on.match_threshold)
    assert member_threshold(on, 10) < on.match_threshold < member_threshold(on, 200) <= on.match_threshold + 0.1
    # the tuning identities' thresholds for 1 stranger in 1,000 (docs/face-eval.md): 10 -> 0.449, 200 -> 0.514
    assert member_threshold(on, 200) - member_threshold(on, 10) == pytest.approx(0.514 - 0.449, abs=0.01)
    assert {member_threshold(off, n) for n in (1, 50, 5000)} == {off.match_threshold}
