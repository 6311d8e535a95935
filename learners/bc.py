"""Behaviour cloning from oracle demonstrations.

Demonstrations are the oracle's optimal plans (``OracleResult.plan``, deterministic worlds)
replayed through the batched engine: every training level gets one env, all levels step together
and each env records (observation, plan action) pairs until its plan ends. In a stochastic world
there is no plan: the oracle's optimal policy (``oracle.OptimalPolicy``, the action of value
iteration for every reachable state and time step) acts in the engine for a few episodes per
level instead, each meeting its own random outcomes. The policy's actor
head is then fit by cross-entropy on those pairs (the value head is left for a later PPO stage).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from autoworld.errors import AutoworldError
from autoworld.learners.policies import ActorCritic
from autoworld.learners.update_graph import GraphedUpdate, wanted

log = logging.getLogger(__name__)


class DemonstrationError(AutoworldError):
    """No oracle demonstration could be collected (no level solved within the state cap)."""


class BCConfig(BaseModel):
    """Hyper-parameters of behaviour cloning."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    levels: int = Field(32, ge=1, description="Training levels whose optimal plans are cloned.")
    epochs: int = Field(200, ge=1, description="Passes over the demonstration set.")
    batch_size: int = Field(256, ge=1, description="Pairs per gradient step.")
    learning_rate: float = Field(1e-2, gt=0, description="Adam learning rate.")
    max_updates: int = Field(4000, ge=1, description="At most this many gradient steps: a "
                             "large demonstration set gets fewer epochs (200 epochs of 25,000 "
                             "pairs would be 20,000 steps).")


class Demonstrations(BaseModel):
    """(observation, action) pairs of replayed oracle plans."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    obs: dict[str, torch.Tensor] = Field(..., description="Observations, (N, ...) per key.")
    actions: torch.Tensor = Field(..., description="Plan actions (N,) int64.")
    levels: int = Field(..., ge=0, description="Levels demonstrated.")
    mean_return: float = Field(..., description="Mean replayed return (the oracle's, if the "
                               "replay is faithful).")


@dataclass
class OraclePlans:
    """What the oracle gives to imitate on a world's first training levels: optimal plans
    (deterministic worlds), or optimal closed-loop policies (stochastic worlds), one per batch
    of levels: ``(batch levels, indices of the solved ones in it, policy)``."""

    levels: list = dc_field(default_factory=list)
    plans: list[list[int]] = dc_field(default_factory=list)
    policies: list[tuple[list, list[int], Any]] = dc_field(default_factory=list)
    # where they are in the split's bank (what the disk cache stores instead of the levels)
    level_ids: list[int] = dc_field(default_factory=list)
    policy_level_ids: list[tuple[list[int], list[int]]] = dc_field(default_factory=list)


_PLAN_CACHE: OrderedDict[tuple, OraclePlans] = OrderedDict()
PLAN_CACHE_SIZE = 16  # worlds whose plans a process keeps (a bench worker meets each often)
PLAN_CHUNK = 8  # levels solved in one batched oracle pass
CACHED_TABLE_BYTES = 16_000_000  # worlds with larger policy tables are not kept between calls
STATE_CAP = 20_000  # levels with more reachable states are not demonstrated


def oracle_plans(spec, levels: int = 32, split: str = "train", state_cap: int = STATE_CAP
                 ) -> OraclePlans:
    """The oracle's optimal behaviour on the first ``levels`` levels of ``split``.

    Levels are solved ``PLAN_CHUNK`` at a time in one batched oracle pass (``solve_many``, the
    same results as one level at a time; a batch whose table does not fit the pass's budget is
    solved a level at a time). Levels over ``state_cap`` states are skipped; a first level over
    it ends the search (the rest would be as costly). Deterministic worlds give plans,
    stochastic ones policies. Cached per process by the world's content hash, and on disk
    (``learners.oracle_cache``): every seed of BC and BC+PPO on a world imitates the same
    oracle, and solving it is most of a BC run.
    """
    from autoworld.envs.grid.levels import bank
    from autoworld.envs.grid.oracle import solve_many
    from autoworld.learners import oracle_cache

    key = (spec.content_hash, split, int(levels), int(state_cap))
    if key in _PLAN_CACHE:
        _PLAN_CACHE.move_to_end(key)
        return _PLAN_CACHE[key]
    b = bank(spec, split)
    path = oracle_cache.entry_path(*key)
    stored = None if path is None else oracle_cache.load(path, b)
    if stored is not None:
        return _keep(key, stored)
    todo = [b.level(i) for i in range(min(levels, len(b)))]
    out = OraclePlans()

    def solve(chunk: list) -> tuple[list, list]:
        pols: list = []
        res = solve_many(spec, chunk, device="cpu", state_cap=state_cap, plan=True,
                         policy_out=pols)
        return res, pols

    for c in range(0, len(todo), PLAN_CHUNK):
        chunk = todo[c:c + PLAN_CHUNK]
        ids = list(range(c, c + len(chunk)))
        results, pols = solve(chunk)
        if c == 0 and not results[0].exact:
            break
        if results[0].stochastic:
            if pols:
                parts = [(chunk, ids, results, pols[0])]
            else:  # the batch's policy table is over budget: a level at a time
                parts = []
                for i, level in zip(ids, chunk, strict=True):
                    one, one_pols = solve([level])
                    if one_pols:
                        parts.append(([level], [i], one, one_pols[0]))
            for lvls, lvl_ids, res, pol in parts:
                used = [j for j, r in enumerate(res) if r.exact]
                if used:
                    out.policies.append((lvls, used, pol))
                    out.policy_level_ids.append((lvl_ids, used))
            continue
        for i, level, res in zip(ids, chunk, results, strict=True):
            plan = res.plan
            if res.exact and plan is None and len(chunk) > 1:  # table over budget in a batch
                plan = solve([level])[0][0].plan
            if plan:
                out.levels.append(level)
                out.plans.append(plan)
                out.level_ids.append(i)
    if path is not None:
        try:
            oracle_cache.save(path, out)
        except OSError as exc:  # a read-only or full disk costs the next process a solve
            log.warning("could not write the oracle cache %s: %s", path, exc)
    return _keep(key, out)


def _keep(key: tuple, found: OraclePlans) -> OraclePlans:
    """Keep ``found`` in the process's cache unless its policy tables are too large."""
    if sum(p.table.nbytes for _, _, p in found.policies) <= CACHED_TABLE_BYTES:
        _PLAN_CACHE[key] = found
        while len(_PLAN_CACHE) > PLAN_CACHE_SIZE:
            _PLAN_CACHE.popitem(last=False)
    return found


def collect_demonstrations(spec, levels: int = 32, split: str = "train",
                           device: str | torch.device = "cpu", seed: int = 0,
                           state_cap: int = STATE_CAP, episodes: int = 4) -> Demonstrations:
    """Demonstrations of the oracle's optimal behaviour on the first ``levels`` levels of
    ``split``: its plans replayed (deterministic worlds), or ``episodes`` episodes per level of
    its optimal policy acting in the engine (stochastic worlds: each episode meets its own
    outcomes, and the policy answers every state it reaches).

    Levels whose state space exceeds ``state_cap`` are skipped; a first level over it fails at
    once (the rest would be as costly).
    """
    found = oracle_plans(spec, levels, split, state_cap)
    if found.policies:
        return _policy_demonstrations(spec, found.policies, device, seed, episodes)
    if not found.plans:
        raise DemonstrationError(f"{spec.name}: the oracle solves none of its first training "
                                 f"levels within {state_cap:,} states, so BC has nothing to "
                                 "clone")
    return _replay_plans(spec, found.levels, found.plans, device, seed)


def _replay_plans(spec, chosen: list, plans: list[list[int]], device, seed: int
                  ) -> Demonstrations:
    from autoworld.envs.grid.engine import GridEngine
    from autoworld.envs.grid.level import LevelBank

    K, T = len(plans), max(len(p) for p in plans)
    eng = GridEngine(spec, num_envs=K, device=device, seed=seed,
                     banks=[LevelBank.from_levels(chosen)], final_obs=False)
    obs = eng.reset(level_ids=torch.arange(K, device=eng.device))
    table = torch.zeros(T, K, dtype=torch.long)  # (T, K) plan actions, padded
    for k, p in enumerate(plans):
        table[:len(p), k] = torch.tensor(p)
    lengths = torch.tensor([len(p) for p in plans])
    obs_parts: dict[str, list[torch.Tensor]] = {}
    act_parts: list[torch.Tensor] = []
    total = torch.zeros(K, dtype=torch.float64)
    for t in range(T):
        live = (lengths > t).to(eng.device)
        act = table[t].to(eng.device)
        _record(obs, act, live, obs_parts, act_parts)
        obs, reward, _, _, _ = eng.step(act)
        total += torch.where(live, reward.double(), 0.0).cpu()
    return Demonstrations(obs={k: torch.cat(v) for k, v in obs_parts.items()},
                          actions=torch.cat(act_parts), levels=K,
                          mean_return=float(total.mean()))


def _policy_demonstrations(spec, policies: list, device, seed: int, episodes: int
                           ) -> Demonstrations:
    """Episodes of the oracle's optimal policies in the engine, recorded until each ends."""
    from autoworld.envs.grid.engine import GridEngine
    from autoworld.envs.grid.level import LevelBank

    obs_parts: dict[str, list[torch.Tensor]] = {}
    act_parts: list[torch.Tensor] = []
    totals: list[torch.Tensor] = []
    for i, (chunk, used, pol) in enumerate(policies):
        K = len(used) * episodes
        eng = GridEngine(spec, num_envs=K, device=device, seed=seed * 1009 + i,
                         banks=[LevelBank.from_levels(chunk)], final_obs=False)
        obs = eng.reset(level_ids=torch.tensor(used, device=eng.device).repeat_interleave(
            episodes))
        live = torch.ones(K, dtype=torch.bool)
        total = torch.zeros(K, dtype=torch.float64)
        while bool(live.any()):
            act = pol.actions(eng.state, live).to(eng.device)
            _record(obs, act, live.to(eng.device), obs_parts, act_parts)
            obs, reward, terminated, truncated, _ = eng.step(act)
            total += torch.where(live, reward.double().cpu(), 0.0)
            live &= ~(terminated | truncated).cpu()
        totals.append(total)
    return Demonstrations(obs={k: torch.cat(v) for k, v in obs_parts.items()},
                          actions=torch.cat(act_parts),
                          levels=sum(len(used) for _, used, _ in policies),
                          mean_return=float(torch.cat(totals).mean()))


def _record(obs: dict[str, torch.Tensor], act: torch.Tensor, live: torch.Tensor,
            obs_parts: dict[str, list[torch.Tensor]], act_parts: list[torch.Tensor]) -> None:
    """Keep the (observation, action) pairs of the live envs of one step, on the host."""
    for key, v in obs.items():
        obs_parts.setdefault(key, []).append(v[live].cpu())
    act_parts.append(act[live].cpu())


def clone_update(policy: ActorCritic, optimizer: torch.optim.Optimizer,
                 obs: dict[str, torch.Tensor], samples: list[torch.Tensor],
                 zero_grad: bool = True) -> torch.Tensor:
    """One behaviour-cloning step on a minibatch (``samples``: the actions (N,)): cross-entropy
    of the policy's logits, backward, optimizer step; returns the loss (1,), detached.
    ``zero_grad=False`` leaves the gradients to the caller (see ``update_graph``)."""
    logits = policy(obs)[0]
    loss = F.cross_entropy(logits, samples[0])
    if zero_grad:
        optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach().reshape(1)


def clone(policy: ActorCritic, demos: Demonstrations, config: BCConfig, seed: int = 0,
          graph_updates: bool | None = None, emulate_graph: bool = False) -> list[float]:
    """Fit ``policy``'s actions to ``demos`` by cross-entropy; returns the per-epoch loss.

    ``config.epochs`` passes, fewer when they would take more than ``config.max_updates``
    gradient steps. The demonstrations move to the policy's device once, and the loss is read
    back once per epoch. On CUDA each step may replay as a recorded graph (``graph_updates``;
    None: ``AUTOWORLD_CUDA_GRAPH_UPDATES``, see ``update_graph``; ``emulate_graph``: its CPU
    stand-in, for tests)."""
    device = next(policy.parameters()).device
    opt = torch.optim.Adam(policy.parameters(), lr=config.learning_rate, fused=True)
    graph = None
    if wanted(device, graph_updates) or emulate_graph:
        graph = GraphedUpdate(policy, opt, lambda o, s, _c, z: clone_update(policy, opt, o, s, z),
                              emulate=emulate_graph)
    gen = torch.Generator().manual_seed(seed)
    N = demos.actions.shape[0]
    batches = -(-N // config.batch_size)
    epochs = min(config.epochs, max(1, config.max_updates // batches))
    obs = {k: v.to(device) for k, v in demos.obs.items()}
    actions = demos.actions.to(device)
    losses = []
    policy.train()
    for _ in range(epochs):
        perm = torch.randperm(N, generator=gen).to(device)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for start in range(0, N, config.batch_size):
            idx = perm[start:start + config.batch_size]
            mb_obs, mb = {k: v[idx] for k, v in obs.items()}, [actions[idx]]
            loss = (graph(mb_obs, mb) if graph is not None else
                    clone_update(policy, opt, mb_obs, mb))
            total += loss[0].double() * idx.numel()
        losses.append(float(total) / N)
    return losses


@torch.no_grad()
def accuracy(policy: ActorCritic, demos: Demonstrations) -> float:
    """Fraction of demonstration pairs where the policy's argmax action is the plan's."""
    device = next(policy.parameters()).device
    logits = policy({k: v.to(device) for k, v in demos.obs.items()})[0]
    return float((logits.argmax(-1).cpu() == demos.actions).float().mean())
