"""Behaviour cloning from oracle demonstrations.

Demonstrations are the oracle's optimal plans (``OracleResult.plan``, deterministic worlds)
replayed through the batched engine: every training level gets one env, all levels step together
and each env records (observation, plan action) pairs until its plan ends. The policy's actor
head is then fit by cross-entropy on those pairs (the value head is left for a later PPO stage).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from autoworld.errors import AutoworldError
from autoworld.learners.policies import ActorCritic

log = logging.getLogger(__name__)


class DemonstrationError(AutoworldError):
    """No oracle demonstration could be collected (stochastic world, or no plan fits)."""


class BCConfig(BaseModel):
    """Hyper-parameters of behaviour cloning."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    levels: int = Field(32, ge=1, description="Training levels whose optimal plans are cloned.")
    epochs: int = Field(200, ge=1, description="Passes over the demonstration set.")
    batch_size: int = Field(256, ge=1, description="Pairs per gradient step.")
    learning_rate: float = Field(1e-2, gt=0, description="Adam learning rate.")


class Demonstrations(BaseModel):
    """(observation, action) pairs of replayed oracle plans."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    obs: dict[str, torch.Tensor] = Field(..., description="Observations, (N, ...) per key.")
    actions: torch.Tensor = Field(..., description="Plan actions (N,) int64.")
    levels: int = Field(..., ge=0, description="Levels with a plan.")
    mean_return: float = Field(..., description="Mean replayed return (the oracle's, if the "
                               "replay is faithful).")


def collect_demonstrations(spec, levels: int = 32, split: str = "train",
                           device: str | torch.device = "cpu", seed: int = 0,
                           state_cap: int = 20_000) -> Demonstrations:
    """Replay the oracle's optimal plans of the first ``levels`` levels of ``split``.

    Levels whose state space exceeds ``state_cap`` give no plan and are skipped; a stochastic
    world, or a first level without a plan, fails at once (the rest would be as costly).
    """
    from autoworld.envs.grid.engine import GridEngine
    from autoworld.envs.grid.level import LevelBank
    from autoworld.envs.grid.levels import bank
    from autoworld.envs.grid.oracle import solve

    b = bank(spec, split)
    chosen, plans = [], []
    for i in range(min(levels, len(b))):
        res = solve(spec, b.level(i), device="cpu", state_cap=state_cap)
        if res.stochastic or (i == 0 and not res.plan):
            break
        if res.plan:
            chosen.append(b.level(i))
            plans.append(res.plan)
    if not plans:
        raise DemonstrationError(f"{spec.name}: the oracle gives no optimal plan (stochastic "
                                 "world or state cap exceeded); use a method without BC")
    K, T = len(plans), max(len(p) for p in plans)
    eng = GridEngine(spec, num_envs=K, device=device, seed=seed,
                     banks=[LevelBank.from_levels(chosen)], final_obs=False)
    obs = eng.reset(level_ids=torch.arange(K, device=eng.device))
    table = torch.zeros(T, K, dtype=torch.long)  # (T, K) plan actions, padded
    for k, p in enumerate(plans):
        table[:len(p), k] = torch.tensor(p)
    lengths = torch.tensor([len(p) for p in plans])
    obs_parts: dict[str, list[torch.Tensor]] = {key: [] for key in obs}
    act_parts: list[torch.Tensor] = []
    total = torch.zeros(K, dtype=torch.float64)
    for t in range(T):
        live = (lengths > t).to(eng.device)
        for key, v in obs.items():
            obs_parts[key].append(v[live].cpu())
        act = table[t].to(eng.device)
        act_parts.append(act[live].cpu())
        obs, reward, _, _, _ = eng.step(act)
        total += torch.where(live, reward.double(), 0.0).cpu()
    return Demonstrations(obs={k: torch.cat(v) for k, v in obs_parts.items()},
                          actions=torch.cat(act_parts), levels=K,
                          mean_return=float(total.mean()))


def clone(policy: ActorCritic, demos: Demonstrations, config: BCConfig, seed: int = 0
          ) -> list[float]:
    """Fit ``policy``'s actions to ``demos`` by cross-entropy; returns the per-epoch loss."""
    device = next(policy.parameters()).device
    opt = torch.optim.Adam(policy.parameters(), lr=config.learning_rate, fused=True)
    gen = torch.Generator().manual_seed(seed)
    N = demos.actions.shape[0]
    losses = []
    policy.train()
    for _ in range(config.epochs):
        perm = torch.randperm(N, generator=gen)
        total = 0.0
        for start in range(0, N, config.batch_size):
            idx = perm[start:start + config.batch_size]
            batch = {k: v[idx].to(device) for k, v in demos.obs.items()}
            logits = policy(batch)[0]
            loss = F.cross_entropy(logits, demos.actions[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        losses.append(total / N)
    return losses


@torch.no_grad()
def accuracy(policy: ActorCritic, demos: Demonstrations) -> float:
    """Fraction of demonstration pairs where the policy's argmax action is the plan's."""
    device = next(policy.parameters()).device
    logits = policy({k: v.to(device) for k, v in demos.obs.items()})[0]
    return float((logits.argmax(-1).cpu() == demos.actions).float().mean())
