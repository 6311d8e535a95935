"""The statistics match hand-computed and brute-force values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from autoworld.leaderboard.stats import (
    bootstrap_ci,
    iqm,
    pairwise_improvement,
    performance_profile,
    probability_of_improvement,
    score_distribution,
    stratified_indices,
    stratified_resample,
)


def test_iqm_of_known_arrays() -> None:
    # 8 values: drop the 2 lowest and 2 highest -> mean(3, 4, 5, 6) = 4.5
    assert iqm(np.array([8.0, 1, 7, 2, 6, 3, 5, 4])) == pytest.approx(4.5)
    # an outlier does not move the IQM
    assert iqm(np.array([1.0, 2, 3, 4, 5, 6, 7, 1000])) == pytest.approx(4.5)
    # 5 values: floor(5/4) = 1 trimmed each side -> mean(2, 3, 4) = 3
    assert iqm(np.array([5.0, 1, 4, 2, 3])) == pytest.approx(3.0)
    # 3 values: nothing trimmed
    assert iqm(np.array([0.0, 0.0, 3.0])) == pytest.approx(1.0)


def test_iqm_matches_scipy_trim_mean_along_axes() -> None:
    x = np.random.default_rng(1).normal(size=(6, 13))
    np.testing.assert_allclose(iqm(x, axis=-1), sps.trim_mean(x, 0.25, axis=-1))
    np.testing.assert_allclose(iqm(x, axis=0), sps.trim_mean(x, 0.25, axis=0))


def test_stratified_resampling_keeps_per_world_counts() -> None:
    sizes = [3, 1, 5]
    idx = stratified_indices(sizes, reps=500, rng=np.random.default_rng(0))
    assert idx.shape == (500, 9)
    blocks = [(0, 3), (3, 4), (4, 9)]
    for lo, hi in blocks:
        block = idx[:, lo:hi]
        assert block.min() >= lo and block.max() < hi  # drawn only from its own world
        assert set(np.unique(block)) == set(range(lo, hi))  # every run gets drawn sometimes
    strata = [np.array([1.0, 2, 3]), np.array([10.0]), np.array([20.0, 21, 22, 23, 24])]
    boot = stratified_resample(strata, 200, np.random.default_rng(0))
    assert np.all(boot[:, 3] == 10.0)  # a one-run world is always that run
    assert np.all(np.isin(boot[:, :3], strata[0])) and np.all(np.isin(boot[:, 4:], strata[2]))


def test_bootstrap_ci_is_reproducible_and_contains_the_point() -> None:
    rng = np.random.default_rng(3)
    strata = [rng.uniform(0, 1, size=5) + w for w in np.linspace(0, 1, 6)]
    a = bootstrap_ci(strata, "iqm", reps=1000, seed=7)
    b = bootstrap_ci(strata, "iqm", reps=1000, seed=7)
    c = bootstrap_ci(strata, "iqm", reps=1000, seed=8)
    assert a == b and a != c
    assert a.lo <= a.point <= a.hi and a.lo < a.hi
    assert a.point == pytest.approx(float(iqm(np.concatenate(strata))))
    m = bootstrap_ci(strata, "mean", reps=1000, seed=7)
    assert m.point == pytest.approx(float(np.concatenate(strata).mean()))
    assert m.lo <= m.point <= m.hi


def test_bootstrap_ci_matches_an_explicit_loop() -> None:
    """Same seed, same draws: the vectorized bootstrap equals a per-replicate loop."""
    strata = [np.array([0.0, 1, 2]), np.array([5.0, 6])]
    reps = 300
    ci = bootstrap_ci(strata, "mean", reps=reps, seed=11)
    idx = stratified_indices([3, 2], reps, np.random.default_rng(11))
    flat = np.concatenate(strata)
    boot = np.array([flat[row].mean() for row in idx])
    lo, hi = np.quantile(boot, [0.025, 0.975])
    assert (ci.lo, ci.hi) == pytest.approx((lo, hi))


def test_bootstrap_of_a_constant_is_degenerate() -> None:
    ci = bootstrap_ci([np.full(4, 0.5), np.full(3, 0.5)], "iqm", reps=100)
    assert ci.point == ci.lo == ci.hi == 0.5


def brute_force_poi(xs: list[np.ndarray], ys: list[np.ndarray]) -> float:
    per_world = []
    for x, y in zip(xs, ys, strict=True):
        total = 0.0
        for a, b in itertools.product(x, y):
            total += 1.0 if a > b else 0.5 if a == b else 0.0
        per_world.append(total / (len(x) * len(y)))
    return sum(per_world) / len(per_world)


def test_probability_of_improvement_matches_a_double_loop() -> None:
    rng = np.random.default_rng(5)
    # rounded scores so that ties happen
    xs = [np.round(rng.uniform(size=n), 1) for n in (3, 5, 4)]
    ys = [np.round(rng.uniform(size=n), 1) for n in (4, 2, 4)]
    poi = probability_of_improvement(xs, ys, reps=500, seed=0)
    assert poi.point == pytest.approx(brute_force_poi(xs, ys))
    assert poi.lo <= poi.point <= poi.hi
    # complementary: P(X > Y) + P(Y > X) = 1 (ties counted half on both sides)
    rev = probability_of_improvement(ys, xs, reps=10, seed=0)
    assert poi.point + rev.point == pytest.approx(1.0)


def test_probability_of_improvement_hand_values() -> None:
    assert pairwise_improvement(np.array([1.0, 2.0]), np.array([1.0, 0.0])) == pytest.approx(
        (0.5 + 1 + 1 + 1) / 4
    )
    same = [np.array([0.3, 0.3])]
    assert probability_of_improvement(same, same, reps=50).point == 0.5
    better = probability_of_improvement([np.array([2.0, 3.0])], [np.array([0.0, 1.0])], reps=50)
    assert better.point == better.lo == better.hi == 1.0


def test_performance_profile_counts_runs_above_tau() -> None:
    strata = [np.array([0.0, 0.5]), np.array([1.0, 0.25])]
    taus = np.array([-0.1, 0.0, 0.3, 0.9, 1.0])
    prof = performance_profile(strata, taus, reps=200, seed=0)
    assert prof.fraction == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert all(lo <= f <= hi for lo, f, hi in zip(prof.lo, prof.fraction, prof.hi, strict=True))
    # non-increasing in tau
    assert all(a >= b for a, b in itertools.pairwise(prof.fraction))
    np.testing.assert_allclose(
        score_distribution(np.array([[0.0, 1.0], [1.0, 1.0]]), np.array([0.5])), [[0.5], [1.0]]
    )
