"""Evaluation: batched rollouts of a policy on a world's validation or test levels, scored with
the oracle.

Every level of the split gets ``episodes_per_level`` envs in one ``GridEngine`` (levels pinned
with ``reset(level_ids=...)``); each env's rewards are summed until its first episode ends. Scores
are the two leaderboard scores of ``oracle.normalized_scores`` per level, averaged over levels:
``R / R_opt`` and ``(R - R_rand) / (R_opt - R_rand)``, using the oracle values stored with the
bank (catalogue worlds) or computed with ``oracle.solve`` / ``oracle.random_return`` when absent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from autoworld.learners.policies import ActorCritic, sample_actions

_oracle_cache: dict[tuple[str, str, int], tuple[list[float], list[float], list[bool]]] = {}


class EvalResult(BaseModel):
    """Scores of one policy on one split of one world."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    world: str = Field(..., description="World name.")
    split: str = Field(..., description="Level split evaluated (validation or test).")
    episodes: int = Field(..., ge=1, description="Episodes run in total.")
    mean_return: float = Field(..., description="Mean undiscounted return over all episodes.")
    success: float = Field(..., ge=0.0, le=1.0, description="Fraction of episodes that ended in "
                           "a terminal state with a positive last reward.")
    normalized: float = Field(..., description="Mean over levels of R / R_opt.")
    normalized_gain: float = Field(..., description="Mean over levels of "
                                   "(R - R_rand) / (R_opt - R_rand).")
    level_returns: list[float] = Field(..., description="Mean return per level.")
    optimal_returns: list[float] = Field(..., description="Oracle optimal return per level.")
    random_returns: list[float] = Field(..., description="Random-policy return per level.")


def oracle_values(spec, split: str, levels: int | None = None
                  ) -> tuple[list[float], list[float]]:
    """Per-level (optimal, random) returns of ``spec``'s ``split`` bank (``levels`` levels, the
    split's default size when None): stored values when the bank carries them, else solved (and
    cached per world content hash)."""
    opt, rnd, _ = _oracle_entry(spec, split, levels)
    return opt, rnd


def oracle_exact(spec, split: str, levels: int | None = None) -> list[bool]:
    """Per level of the same bank: whether its optimal return is exact (False: the oracle's
    state space was over its cap and the value is a certified upper bound, so R / R_opt there
    is conservative)."""
    return _oracle_entry(spec, split, levels)[2]


def _oracle_entry(spec, split: str, levels: int | None
                  ) -> tuple[list[float], list[float], list[bool]]:
    from autoworld.envs.grid.levels import bank
    from autoworld.envs.grid.oracle import solve
    from autoworld.envs.grid.scores import random_return

    b = bank(spec, split, size=levels)
    key = (spec.content_hash, split, len(b))
    if key in _oracle_cache:
        return _oracle_cache[key]
    opt = b.info.get("optimal_return")
    exact = b.info.get("optimal_exact")
    rnd = b.info.get("random_return")
    if opt is None or exact is None:
        solved = [solve(spec, b.level(i), plan=False) for i in range(len(b))]
        opt = [r.optimal_return for r in solved] if opt is None else opt
        exact = [r.exact for r in solved]
    if rnd is None:
        rnd = [random_return(spec, b.level(i)) for i in range(len(b))]
    out = ([float(x) for x in opt], [float(x) for x in rnd], [bool(x) for x in exact])
    _oracle_cache[key] = out
    return out


PolicyFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]


@torch.no_grad()
def evaluate(policy: ActorCritic | PolicyFn, spec, split: Literal["validation", "test"] =
             "validation", episodes_per_level: int = 8, device: str | torch.device = "cpu",
             seed: int = 0, greedy: bool = False, levels: int | None = None) -> EvalResult:
    """Score ``policy`` on every level of ``spec``'s ``split`` bank.

    Args:
        policy: an ``ActorCritic`` (actions sampled from its logits, or argmax if ``greedy``), or
            any callable mapping an observation dict to actions (B,) int64.
        spec: the world.
        split: ``validation`` (model selection) or ``test`` (reporting).
        episodes_per_level: envs per level (all run in one batch).
        device: where the rollouts run.
        seed: seeds the engine and the action sampling.
        greedy: act with the argmax action instead of sampling.
        levels: score on a bank of this many levels of ``split`` (default: the split's size,
            ``levels.DEFAULT_SIZES``); larger banks give finer scores, their oracle values are
            computed on first use.
    """
    from autoworld.envs.grid.engine import GridEngine
    from autoworld.envs.grid.levels import bank
    from autoworld.envs.grid.scores import normalized_scores

    opt, rnd = oracle_values(spec, split, levels)
    L = len(opt)
    E = int(episodes_per_level)
    B = L * E
    banks = None if levels is None else [bank(spec, split, size=levels)]
    eng = GridEngine(spec, num_envs=B, device=device, seed=seed, split=split, final_obs=False,
                     banks=banks)
    level_ids = torch.arange(B, device=eng.device) % L
    obs = eng.reset(level_ids=level_ids)
    gen = torch.Generator(device=eng.device).manual_seed(seed)
    is_net = isinstance(policy, ActorCritic)
    if is_net:
        was_training = policy.training
        policy.eval()
        state = policy.initial_state(B, eng.device)
    total = torch.zeros(B, dtype=torch.float64, device=eng.device)
    alive = torch.ones(B, dtype=torch.bool, device=eng.device)
    success = torch.zeros(B, dtype=torch.bool, device=eng.device)
    for t in range(spec.max_steps):
        if is_net:
            logits, _, state = policy(obs, state)
            actions = sample_actions(logits, gen, greedy)
        else:
            actions = policy(obs)
        obs, reward, terminated, truncated, _ = eng.step(actions)
        total += torch.where(alive, reward.double(), 0.0)
        success |= alive & terminated & (reward > 0)
        alive &= ~(terminated | truncated)
        if t % 8 == 7 and not bool(alive.any()):  # one host sync every 8 steps
            break
    if is_net and was_training:
        policy.train()
    returns = total.cpu().numpy().reshape(E, L)  # env i runs level i % L
    level_returns = returns.mean(axis=0)
    ratio, gain = normalized_scores(level_returns, np.asarray(opt), np.asarray(rnd))
    return EvalResult(
        world=spec.name,
        split=split,
        episodes=B,
        mean_return=math.fsum(total.cpu().tolist()) / B,
        success=float(success.float().mean().item()),
        normalized=float(np.mean(ratio)),
        normalized_gain=float(np.mean(gain)),
        level_returns=[float(x) for x in level_returns],
        optimal_returns=opt,
        random_returns=rnd,
    )
