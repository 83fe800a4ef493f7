"""The tracker's own assignment gives the same minimum cost as scipy's (the reference), square and rectangular."""

from __future__ import annotations

import numpy as np
import pytest

from agent.pipelines.people.assignment import linear_sum_assignment


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (5, 8), (8, 5), (20, 20), (40, 25), (2, 30)])
def test_same_minimum_cost_as_scipy(shape: tuple[int, int]) -> None:
    from scipy.optimize import linear_sum_assignment as reference

    rng = np.random.default_rng(sum(shape))
    for trial in range(20):
        cost = rng.random(shape)
        if trial % 3 == 0:  # IoU-like costs: many exact ties at 1.0 (no overlap)
            cost = np.where(cost > 0.6, 1.0, cost)
        rows, cols = linear_sum_assignment(cost)
        want_rows, want_cols = reference(cost)
        assert len(rows) == len(want_rows) == min(shape)
        assert list(rows) == sorted(rows) and len(set(cols.tolist())) == len(cols)
        assert cost[rows, cols].sum() == pytest.approx(cost[want_rows, want_cols].sum(), abs=1e-9)


def test_empty_and_invalid() -> None:
    rows, cols = linear_sum_assignment(np.zeros((0, 4)))
    assert rows.size == cols.size == 0
    with pytest.raises(ValueError):
        linear_sum_assignment(np.array([[np.inf, 1.0]]))
