"""Population-based training (Jaderberg et al. 2017) over PPO hyper-parameters.

A population of PPO learners trains in turns of ``interval`` iterations. After each turn every
member is scored by its recent training return; the bottom ``truncation`` fraction **exploits**
(copies the weights and optimizer state of a member drawn from the top by the selection rule) and
**explores** (multiplies each hyper-parameter by a random factor of ``perturb``). The agent
component changed is therefore both the weights and the hyper-parameters.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from autoworld.learners.ppo import PPO, PPOConfig
from autoworld.learners.soe import Candidate, select_best

HPARAMS = ("learning_rate", "ent_coef", "clip_coef")
BOUNDS = {"learning_rate": (1e-5, 1e-1), "ent_coef": (0.0, 0.5), "clip_coef": (0.05, 0.5)}


class PBTConfig(BaseModel):
    """Hyper-parameters of PBT itself (PPO's own come from ``PPOConfig``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    population: int = Field(4, ge=2, description="PPO learners trained side by side.")
    interval: int = Field(2, ge=1, description="PPO iterations per member between exploits.")
    truncation: float = Field(0.25, gt=0, lt=1, description="Bottom fraction that exploits.")
    perturb: tuple[float, float] = Field((0.8, 1.25), description="Explore factors.")
    init_spread: float = Field(2.0, ge=1, description="Initial hyper-parameters are drawn "
                               "log-uniformly within base / spread .. base * spread.")


def _clip(name: str, value: float) -> float:
    lo, hi = BOUNDS[name]
    return float(min(max(value, lo), hi))


def _set_hparams(learner: PPO, hparams: dict[str, float]) -> None:
    learner.config = learner.config.model_copy(update=hparams)
    frac = 1.0 - learner.iteration / learner.num_iterations if learner.config.anneal_lr else 1.0
    for group in learner.optimizer.param_groups:
        group["lr"] = frac * hparams["learning_rate"]


class PBTLog(BaseModel):
    """One exploit/explore round."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    round: int = Field(..., ge=0, description="Round index.")
    env_steps: int = Field(..., ge=0, description="Env-steps of all members so far.")
    returns: list[float] = Field(..., description="Recent training return per member.")
    hparams: list[dict[str, float]] = Field(..., description="Hyper-parameters per member.")
    exploited: list[tuple[int, int]] = Field(..., description="(loser, donor) pairs.")


def run_pbt(spec, ppo: PPOConfig, config: PBTConfig, total_steps: int, *, device: str = "cpu",
            seed: int = 0, select: Callable[..., list[Candidate]] | None = None,
            on_round: Callable[[PBTLog], None] | None = None) -> tuple[PPO, list[PBTLog]]:
    """Train a PBT population of PPO learners for ``total_steps`` env-steps in all; returns the
    best member and the round log."""
    rng = np.random.default_rng(seed)
    select = select or select_best
    per_member = total_steps // config.population
    if per_member < 1:  # not one env-step per member: PBT would pass its budget
        raise ValueError(f"PBT with {config.population} members needs a budget of at least "
                         f"{config.population} env-steps (got {total_steps})")
    members: list[PPO] = []
    cands: list[Candidate] = []
    for m in range(config.population):
        hp = {}
        for name in HPARAMS:
            base = getattr(ppo, name)
            factor = math.exp(rng.uniform(-1, 1) * math.log(config.init_spread)) if m else 1.0
            hp[name] = _clip(name, base * factor)
        learner = PPO(spec, ppo.model_copy(update=hp), per_member, device=device, cap=True,
                      seed=seed * 1000 + m)
        members.append(learner)
        cands.append(Candidate(hparams=hp, state={"member": m}))
    logs: list[PBTLog] = []
    for rnd in range(math.ceil(members[0].num_iterations / config.interval)):
        for m, learner in enumerate(members):
            recent = []
            for _ in range(config.interval):
                if learner.iteration >= learner.num_iterations:
                    break
                stats = learner.iterate()
                if not math.isnan(stats["episode_return"]):
                    recent.append(stats["episode_return"])
            if recent:
                cands[m].ret = float(np.mean(recent))
        ordered = select_best(cands, len(cands))
        n_lose = max(1, int(config.truncation * len(cands)))
        losers = ordered[-n_lose:]
        winners = ordered[:-n_lose]
        pairs = []
        for loser in losers:
            donor = select(winners, 1)[0]
            i, j = loser.state["member"], donor.state["member"]
            members[i].policy.load_state_dict(copy.deepcopy(members[j].policy.state_dict()))
            members[i].optimizer.load_state_dict(copy.deepcopy(members[j].optimizer.state_dict()))
            hp = {k: _clip(k, v * float(rng.choice(config.perturb)))
                  for k, v in donor.hparams.items()}
            _set_hparams(members[i], hp)
            loser.hparams, loser.ret, loser.parent = hp, donor.ret, donor.uid
            pairs.append((i, j))
        entry = PBTLog(round=rnd, env_steps=sum(p.global_step for p in members),
                       returns=[c.ret for c in cands], hparams=[dict(c.hparams) for c in cands],
                       exploited=pairs)
        logs.append(entry)
        if on_round is not None:
            on_round(entry)
    best = select_best(cands, 1)[0]
    return members[best.state["member"]], logs
