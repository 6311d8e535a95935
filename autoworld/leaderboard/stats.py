"""Robust aggregate statistics for few-run RL results (Agarwal et al., 2021, "Deep RL at the edge
of the statistical precipice"): interquartile mean, stratified-bootstrap confidence intervals,
performance profiles and the probability of improvement; and AutoEnv's "learning upper bound"
analysis, the gain of the best fixed method against the per-world best as the number of worlds
grows (``gains_by_world_count``).

Scores of one method are given as *strata*: one 1-D array of run scores per world (the seeds).
The stratified bootstrap resamples runs with replacement *within* each world, so every bootstrap
replicate keeps each world's number of runs; all replicates are drawn at once (arrays of shape
``(reps, runs)``) from a seeded ``numpy.random.Generator``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Aggregate = Literal["iqm", "mean"]
Strata = Sequence[np.ndarray]
Statistic = Callable[[np.ndarray], np.ndarray]

DEFAULT_REPS = 2000
DEFAULT_CONFIDENCE = 0.95
ENUMERATE_SUBSETS = 100_000  # subsets of worlds listed before sampling (above: drawn directly)


class Interval(BaseModel):
    """A point estimate with its bootstrap confidence interval."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    point: float = Field(description="The statistic on the observed runs.")
    lo: float = Field(description="Lower end of the percentile-bootstrap interval.")
    hi: float = Field(description="Upper end of the percentile-bootstrap interval.")


class Profile(BaseModel):
    """A performance profile: the fraction of runs scoring above each threshold tau."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    taus: list[float] = Field(description="Score thresholds tau (ascending).")
    fraction: list[float] = Field(description="Fraction of runs with score > tau.")
    lo: list[float] = Field(description="Lower bootstrap bound per tau.")
    hi: list[float] = Field(description="Upper bootstrap bound per tau.")


# -- point statistics ---------------------------------------------------------------------------


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean along ``axis``: the mean of the middle 50% of values, trimming
    ``floor(n / 4)`` values from each end (the same convention as ``scipy.stats.trim_mean(x,
    0.25)``, which rliable uses)."""
    x = np.sort(np.asarray(x, dtype=np.float64), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("iqm of an empty array")
    k = int(np.floor(0.25 * n))
    return np.take(x, np.arange(k, n - k), axis=axis).mean(axis=axis)


def mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Plain mean along ``axis``."""
    return np.asarray(x, dtype=np.float64).mean(axis=axis)


AGGREGATES: dict[str, Statistic] = {"iqm": iqm, "mean": mean}


# -- the stratified bootstrap --------------------------------------------------------------------


def _check_strata(strata: Strata) -> list[np.ndarray]:
    arrays = [np.asarray(s, dtype=np.float64).reshape(-1) for s in strata]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("every stratum (world) needs at least one run")
    return arrays


def stratified_indices(sizes: Sequence[int], reps: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap indices into the concatenation of strata of ``sizes``.  # (reps, sum(sizes))

    Stratum ``j`` occupies positions ``offset_j : offset_j + sizes[j]`` of every row, and its
    indices are drawn (with replacement) only from its own block, so each replicate keeps the
    per-stratum counts."""
    sizes_arr = np.asarray(sizes, dtype=np.int64)
    offsets = np.repeat(np.cumsum(sizes_arr) - sizes_arr, sizes_arr)  # (N,) start of own block
    widths = np.repeat(sizes_arr, sizes_arr)  # (N,) size of own block
    u = rng.random((reps, int(sizes_arr.sum())))
    return offsets + np.minimum((u * widths).astype(np.int64), widths - 1)


def stratified_resample(strata: Strata, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``reps`` stratified bootstrap replicates of the runs.  # (reps, total runs)"""
    arrays = _check_strata(strata)
    flat = np.concatenate(arrays)
    return flat[stratified_indices([a.size for a in arrays], reps, rng)]


def _percentile_interval(point: float, boot: np.ndarray, confidence: float) -> Interval:
    alpha = 1.0 - confidence
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    return Interval(point=float(point), lo=float(lo), hi=float(hi))


def bootstrap_ci(
    strata: Strata,
    statistic: Statistic | Aggregate = "iqm",
    reps: int = DEFAULT_REPS,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """The statistic over all runs with its stratified percentile-bootstrap interval.

    Example:
        >>> ci = bootstrap_ci([np.array([0.1, 0.2]), np.array([0.8, 0.9, 1.0])], "mean")
        >>> round(ci.point, 6), ci.lo <= ci.point <= ci.hi
        (0.6, True)
    """
    fn = AGGREGATES[statistic] if isinstance(statistic, str) else statistic
    arrays = _check_strata(strata)
    point = float(fn(np.concatenate(arrays)))
    boot = fn(stratified_resample(arrays, reps, np.random.default_rng(seed)))  # (reps,)
    return _percentile_interval(point, boot, confidence)


# -- performance profiles ------------------------------------------------------------------------


def score_distribution(runs: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs (last axis) with score > tau, for each tau.  # (..., len(taus))"""
    runs = np.asarray(runs, dtype=np.float64)
    return (runs[..., :, None] > np.asarray(taus)[None, :]).mean(axis=-2)


def performance_profile(
    strata: Strata,
    taus: np.ndarray | None = None,
    reps: int = DEFAULT_REPS,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Profile:
    """The run-score distribution (performance profile) with stratified-bootstrap bands."""
    taus = np.linspace(0.0, 1.0, 41) if taus is None else np.asarray(taus, dtype=np.float64)
    arrays = _check_strata(strata)
    point = score_distribution(np.concatenate(arrays), taus)  # (T,)
    boot = score_distribution(
        stratified_resample(arrays, reps, np.random.default_rng(seed)), taus
    )  # (reps, T)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    return Profile(taus=taus.tolist(), fraction=point.tolist(), lo=lo.tolist(), hi=hi.tolist())


# -- probability of improvement -----------------------------------------------------------------


def pairwise_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) over all pairs of runs of one world, ties counted half (the Mann-Whitney U
    statistic divided by n * m), vectorized over leading axes.  # x (..., n), y (..., m) -> (...)"""
    x = np.asarray(x, dtype=np.float64)[..., :, None]
    y = np.asarray(y, dtype=np.float64)[..., None, :]
    return ((x > y) + 0.5 * (x == y)).mean(axis=(-2, -1))


def probability_of_improvement(
    x_strata: Strata,
    y_strata: Strata,
    reps: int = DEFAULT_REPS,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """P(X > Y): the average over worlds of the per-world probability that a run of X beats a
    run of Y (ties count half). Strata are paired by position (world j of X with world j of Y).
    The interval resamples the runs of X and of Y independently within each world."""
    xs, ys = _check_strata(x_strata), _check_strata(y_strata)
    if len(xs) != len(ys):
        raise ValueError("x and y need the same worlds (strata)")
    point = float(np.mean([pairwise_improvement(a, b) for a, b in zip(xs, ys, strict=True)]))
    rng = np.random.default_rng(seed)
    bx = stratified_resample(xs, reps, rng)  # (reps, Nx)
    by = stratified_resample(ys, reps, rng)  # (reps, Ny)
    per_world = []
    ox = oy = 0
    for a, b in zip(xs, ys, strict=True):
        per_world.append(pairwise_improvement(bx[:, ox:ox + a.size], by[:, oy:oy + b.size]))
        ox, oy = ox + a.size, oy + b.size
    boot = np.mean(per_world, axis=0)  # (reps,)
    return _percentile_interval(point, boot, confidence)


# -- best fixed method against the per-world best (AutoEnv's learning upper bound) --------------


class GainByWorlds(BaseModel):
    """Gain over the untrained policy (score - initial score) on subsets of ``worlds`` worlds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    worlds: int = Field(..., ge=1, description="Number of worlds n in each subset.")
    subsets: int = Field(..., ge=1, description="Subsets of n worlds averaged over.")
    best_fixed_gain: float = Field(..., description="Mean gain of the method that is best "
                                   "over the subset.")
    upper_bound_gain: float = Field(..., description="Mean gain of the best method per world.")


def gains_by_world_count(gain: np.ndarray, sizes: Sequence[int] = (1, 6),
                         max_subsets: int = 64, seed: int = 0) -> list[GainByWorlds]:
    """For n in ``sizes`` (those below the number of worlds) and all the worlds: over subsets of
    n worlds (every one, or ``max_subsets`` drawn without replacement), the mean gain of the
    method best on the subset, and the mean over the subset's worlds of each world's best gain.

    ``gain`` is (worlds, methods). With one world both are the best gain there; AutoEnv's
    finding is that the first shrinks as worlds are added while the second does not."""
    gain = np.asarray(gain, dtype=np.float64)
    n_worlds = gain.shape[0]
    rng = np.random.default_rng(seed)
    out = []
    for n in sorted({*[k for k in sizes if 0 < k < n_worlds], n_worlds}):
        if math.comb(n_worlds, n) <= ENUMERATE_SUBSETS:
            combos = [list(c) for c in itertools.combinations(range(n_worlds), n)]
            if len(combos) > max_subsets:
                combos = [combos[i] for i in rng.choice(len(combos), max_subsets, replace=False)]
        else:  # e.g. 6 of 36 worlds: 1.9M subsets, drawn one by one instead of listed
            seen: set[tuple[int, ...]] = set()
            while len(seen) < max_subsets:
                seen.add(tuple(sorted(rng.choice(n_worlds, n, replace=False).tolist())))
            combos = [list(c) for c in sorted(seen)]
        fixed = [float(gain[c].mean(0).max()) for c in combos]
        upper = [float(gain[c].max(1).mean()) for c in combos]
        out.append(GainByWorlds(worlds=n, subsets=len(combos),
                                best_fixed_gain=float(np.mean(fixed)),
                                upper_bound_gain=float(np.mean(upper))))
    return out
