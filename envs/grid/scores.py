"""The random-policy baseline and the two leaderboard scores of a return on a grid level.

``random_return`` measures the uniform-random policy by batched rollouts and
``normalized_scores`` turns a return into the two leaderboard scores, given the oracle's optimal
return and the random return.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from autoworld.envs.grid.engine import NUM_ACTIONS, GridEngine
from autoworld.envs.grid.level import Level, LevelBank

EPS = 1e-9


# ====================================================================== random policy
def random_return(spec, level: Level, episodes: int = 256, seed: int = 0,
                  device: str | torch.device = "cpu") -> float:
    """Mean return of the uniform-random policy on ``level`` over ``episodes`` batched episodes
    (each env's rewards are summed until its first episode ends). Deterministic for a seed."""
    return random_returns(spec, [level], episodes=episodes, seed=seed, device=device)[0]


def random_returns(spec, levels: Sequence[Level], episodes: int = 256, seed: int = 0,
                   device: str | torch.device = "cpu") -> list[float]:
    """``random_return`` of several levels of one world in one batched engine (identical
    results): level i's episodes are envs ``i * episodes ..``, each with the random key and the
    action stream that env would have in a one-level run.

    The episodes advance by the engine's transition alone (no observations, no resets: only the
    first episode of an env counts), with the reward, the time step and the random counter of
    ``GridEngine.step``, so the returns are those of stepping the engine."""
    levels = list(levels)
    L = len(levels)
    if L == 0:
        return []
    B = L * episodes
    eng = GridEngine(spec, num_envs=B, device=device, seed=seed,
                     banks=[LevelBank.from_levels(levels)], final_obs=False,
                     env_index=list(range(episodes)) * L)
    eng.reset(level_ids=torch.arange(L).repeat_interleave(episodes))
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(B, dtype=torch.float64, device=eng.device)
    alive = torch.ones(B, dtype=torch.bool, device=eng.device)
    s = eng.state
    horizon = eng.max_steps.to(torch.float32)
    for _ in range(spec.max_steps):
        a = torch.randint(0, NUM_ACTIONS, (episodes,), generator=gen).repeat(L).to(eng.device)
        ctx = eng.transition(s, a)
        s.t = s.t + 1
        # GridEngine.step's reward, term by term
        reward = ctx.reward_fixed + ctx.reward_timed * (
            1.0 - eng.time_decay * s.t.to(torch.float32) / horizon)
        s.tick = s.tick + 1
        total += torch.where(alive, reward.double(), 0.0)
        alive &= ~(ctx.terminated | (s.t >= eng.max_steps))
        if not bool(alive.any()):
            break
    per_level = total.cpu().view(L, episodes).tolist()
    return [math.fsum(row) / episodes for row in per_level]


# ====================================================================== scores
def normalized_scores(R, R_opt, R_random):
    """The two leaderboard scores of a return ``R``: ``(R / R_opt, (R - R_random) / (R_opt -
    R_random))``. Scalars give floats; arrays (numpy or anything array-like) give arrays.

    Zero denominators: where ``R_opt <= 1e-9`` (nothing positive is attainable) the first score
    is 1.0 if ``R >= R_opt`` (the optimum is matched) and 0.0 otherwise; where ``R_opt - R_random
    <= 1e-9`` (the random policy is already optimal) the second score is likewise 1.0 if ``R >=
    R_opt`` and 0.0 otherwise. Both comparisons allow a 1e-9 tolerance.
    """
    r, opt, rnd = (np.asarray(x, dtype=np.float64) for x in (R, R_opt, R_random))
    matched = np.where(r >= opt - EPS, 1.0, 0.0)
    gap = opt - rnd
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(opt > EPS, r / np.where(opt > EPS, opt, 1.0), matched)
        gain = np.where(gap > EPS, (r - rnd) / np.where(gap > EPS, gap, 1.0), matched)
    if ratio.ndim == 0:
        return float(ratio), float(gain)
    return ratio, gain
