"""Behaviour cloning of arm demonstrations into cross-embodiment chunk policies, and their
batched evaluation in the arm engine.

Pipeline: ``build_chunks`` turns a DemoSet (``autoworld.envs.arm.demos``) into (observation,
T-step chunk) pairs, with the chunk lengths of a debiasing mode (``learners.debias``);
``train_bc`` fits an ``XPolicy`` on them (pretraining, or fine-tuning a pretrained policy with
the same call); ``rollout_success`` rolls a policy out in ``ArmEngine`` (all envs in one batch,
a new chunk every ``replan`` steps) and scores the first episode of every env.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field

from autoworld.errors import AutoworldError
from autoworld.learners.debias import (
    MODES,
    Mode,
    RateModelConfig,
    chunk_lengths,
    demo_obs,
    fit_rate_model,
    resample_chunks,
)
from autoworld.learners.xembodiment import XPolicy, XPolicyConfig

log = logging.getLogger(__name__)


class ArmBCError(AutoworldError, ValueError):
    """Bad inputs to arm behaviour cloning (empty dataset, unknown mode, bad interface)."""


class ArmBCConfig(BaseModel):
    """Behaviour cloning of arm demonstrations."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    debias: Mode = Field("none", description="Chunk-length rule: none, uniform, episode or "
                         "debias (see learners.debias).")
    steps: int = Field(1500, ge=1, description="Adam steps.")
    batch_size: int = Field(256, ge=1, description="Chunks per step.")
    learning_rate: float = Field(3e-3, gt=0, description="AdamW learning rate (cosine decay "
                                 "to zero).")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay.")
    stride: int = Field(1, ge=1, description="Use the chunk starting at every stride-th step.")
    rate_model: RateModelConfig = Field(default_factory=RateModelConfig,
                                        description="Action-rate model (debias mode only).")


@dataclass
class ChunkSet:
    """Training pairs: observations (N, ...) per key and target chunks (N, T, 3)."""

    obs: dict[str, torch.Tensor]
    chunks: torch.Tensor
    episode: torch.Tensor  # (N,) long: source episode
    start: torch.Tensor    # (N,) long: source step
    length: torch.Tensor   # (N,) long: raw steps resampled into the chunk

    def __len__(self) -> int:
        return int(self.chunks.shape[0])


def build_chunks(demos, chunk: int, mode: Mode = "none", *, stride: int = 1,
                 rate_model=None, rate_config: RateModelConfig | None = None,
                 seed: int = 0) -> ChunkSet:
    """(observation, chunk) pairs from every ``stride``-th valid step of ``demos``.

    ``mode="debias"`` fits an action-rate model on ``demos`` unless ``rate_model`` is given
    (a model fitted on a larger pretraining set may be reused for fine-tuning data).
    """
    if mode not in MODES:
        raise ArmBCError(f"debias: unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if len(demos) == 0 or not bool(demos.valid.any()):
        raise ArmBCError("the demonstration set is empty; collect at least one finished episode")
    if mode == "debias" and rate_model is None:
        rate_model, _ = fit_rate_model(demos, chunk, rate_config, seed=seed)
    L = chunk_lengths(demos, chunk, mode, rate_model)  # (E, S)
    valid = demos.valid.bool().clone()
    valid[:, torch.arange(valid.shape[1]) % stride != 0] = False
    e, t = valid.nonzero(as_tuple=True)
    length = L[e, t]
    chunks = resample_chunks(demos.ee_action, demos.valid, e, t, length, chunk)
    obs = {k: v.clone() for k, v in demo_obs(demos, e, t).items()}
    return ChunkSet(obs=obs, chunks=chunks, episode=e, start=t, length=length)


def train_bc(policy: XPolicy, data: ChunkSet, config: ArmBCConfig | None = None, seed: int = 0,
             device: str | torch.device = "cpu") -> list[float]:
    """Fit ``policy`` (in place) to ``data``; returns the mean loss of every 10% of the steps."""
    cfg = config or ArmBCConfig()
    if len(data) == 0:
        raise ArmBCError("no training chunk; the demonstration set is empty")
    if data.chunks.shape[1] != policy.config.chunk:
        raise ArmBCError(f"chunks have {data.chunks.shape[1]} steps but the policy predicts "
                         f"{policy.config.chunk}; build chunks with chunk="
                         f"{policy.config.chunk}")
    device = torch.device(device)
    policy.to(device).train()
    obs = {k: v.to(device) for k, v in data.obs.items()}
    target = data.chunks.to(device)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.learning_rate,
                            weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    gen = torch.Generator().manual_seed(seed)
    n = len(data)
    window = max(1, cfg.steps // 10)
    losses: list[float] = []
    acc = 0.0
    for step in range(cfg.steps):
        idx = torch.randint(n, (min(cfg.batch_size, n),), generator=gen).to(device)
        loss = policy.loss({k: v[idx] for k, v in obs.items()}, target[idx])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        sched.step()
        acc += float(loss.detach())
        if (step + 1) % window == 0 or step == cfg.steps - 1:
            losses.append(acc / ((step % window) + 1))
            acc = 0.0
    policy.eval()
    return losses


def embodiment_descs(names: Sequence[str]) -> torch.Tensor:
    """Stacked joint descriptions (K, N_MAX, D) of standard embodiments, for per-embodiment
    heads."""
    from autoworld.envs.arm.embodiment import standard_embodiments

    table = standard_embodiments()
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ArmBCError(f"unknown embodiments {unknown}; use names of "
                         f"standard_embodiments(): {', '.join(sorted(table))}")
    return torch.stack([table[n].joint_desc() for n in names])


def make_policy(config: XPolicyConfig, seed: int = 0) -> XPolicy:
    """A freshly initialised policy, seeded without touching the global RNG."""
    descs = embodiment_descs(config.embodiments) if config.per_embodiment_heads else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return XPolicy(config, descs)


class RolloutResult(BaseModel):
    """What a batched rollout of a chunk policy measured."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    success: float = Field(..., ge=0, le=1, description="Fraction of first episodes that "
                           "succeeded.")
    mean_return: float = Field(..., description="Mean return of the first episodes.")
    episodes: int = Field(..., ge=1, description="First episodes scored (one per env).")
    env_steps: int = Field(..., ge=0, description="Engine env-steps spent.")
    per_world: list[float] = Field(default_factory=list, description="Success rate per world "
                                   "of the engine (in engine order).")


def chunk_actor(policy, replan: int | None = None, greedy: bool = False, seed: int = 0):
    """An actor factory for ``rollout``: ``policy`` (``act(obs) -> (B, T, 3)``) predicts a chunk
    every ``replan`` steps (default: the whole chunk) and its steps are executed in turn."""
    T = policy.config.chunk
    every = T if replan is None else max(1, min(int(replan), T))

    def factory(engine):
        gen = torch.Generator(device=engine.device).manual_seed(seed)
        state: dict[str, torch.Tensor] = {}

        def act(obs: dict[str, torch.Tensor], k: int) -> torch.Tensor:
            if k % every == 0:
                state["chunk"] = policy.act(obs, greedy=greedy, generator=gen)
            return state["chunk"][:, k % every]

        return act

    return factory


def expert_actor(operators=None, side: str = "random", seed: int = 0):
    """An actor factory for ``rollout`` that runs the scripted expert (the oracle of arm
    worlds: its return is the reference score, not a proven optimum)."""
    from autoworld.envs.arm.experts import ScriptedExpert

    def factory(engine):
        expert = ScriptedExpert(engine, operators, seed=seed, side=side)
        return lambda obs, k: expert.act(obs)

    return factory


def random_actor(seed: int = 0):
    """An actor factory for ``rollout``: uniform random actions in [-1, 1]."""

    def factory(engine):
        gen = torch.Generator(device=engine.device).manual_seed(seed)
        return lambda obs, k: torch.rand(engine.num_envs, engine.action_dim, generator=gen,
                                         device=engine.device) * 2 - 1

    return factory


@torch.no_grad()
def rollout(actor_factory, worlds, episodes: int, *, seed: int = 0, split: str = "train",
            device: str | torch.device = "cpu", num_scenes: int | None = None,
            check_every: int | None = None) -> RolloutResult:
    """Score the first episode of ``episodes`` envs spread over ``worlds`` (one batched
    ``ArmEngine``). ``actor_factory(engine)`` returns ``act(obs, k) -> (B, action_dim)`` for
    step ``k`` (see ``chunk_actor``, ``expert_actor``, ``random_actor``). Whether every episode
    has ended is asked every ``check_every`` steps (default: every step on CPU, every 8 on a
    GPU, where the question waits for the device); steps past the last end are not counted."""
    from autoworld.envs.arm.engine import ArmEngine
    from autoworld.learners.soe import end_check_every

    worlds = [worlds] if not isinstance(worlds, list | tuple) else list(worlds)
    engine = ArmEngine(worlds, num_envs=episodes, device=device, seed=seed, split=split,
                       num_scenes=num_scenes)
    act = actor_factory(engine)
    horizon = max(int(w.max_steps) for w in worlds)
    obs = engine.reset(seed=seed)
    B = engine.num_envs
    alive = torch.ones(B, dtype=torch.bool, device=engine.device)
    success = torch.zeros(B, dtype=torch.bool, device=engine.device)
    ret = torch.zeros(B, dtype=torch.float64, device=engine.device)
    every = check_every or end_check_every(engine.device)
    live_steps = torch.zeros((), dtype=torch.long, device=engine.device)
    for k in range(horizon + 1):
        obs, reward, terminated, truncated, info = engine.step(act(obs, k))
        live_steps += alive.any()  # a step counts while some episode is still running
        ret += torch.where(alive, reward.double(), 0.0)
        success |= alive & info["success"].bool()
        alive &= ~(terminated | truncated)
        if (k + 1) % every == 0 and not bool(alive.any()):
            break
    steps = int(live_steps) * B
    wid = engine.world_ids.to(success.device)
    per_world = [float(success[wid == i].float().mean()) if bool((wid == i).any()) else 0.0
                 for i in range(len(worlds))]
    return RolloutResult(success=float(success.float().mean()), mean_return=float(ret.mean()),
                         episodes=B, env_steps=steps, per_world=per_world)


def rollout_success(policy, worlds, episodes: int, *, seed: int = 0, split: str = "train",
                    device: str | torch.device = "cpu", replan: int | None = None,
                    greedy: bool = False) -> RolloutResult:
    """Roll a chunk policy out (see ``rollout`` and ``chunk_actor``); the end-effector
    interface is required."""
    worlds = [worlds] if not isinstance(worlds, list | tuple) else list(worlds)
    bad = [w.name for w in worlds if w.interface != "ee_delta"]
    if bad:
        raise ArmBCError(f"chunk policies output end-effector deltas; worlds {bad} use another "
                         "action interface (set interface='ee_delta')")
    return rollout(chunk_actor(policy, replan, greedy, seed), worlds, episodes, seed=seed,
                   split=split, device=device)
