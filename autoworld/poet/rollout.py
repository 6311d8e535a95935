"""Batched work of a POET iteration: ES steps of many pairs and scoring of many
(agent, world) combinations, each as ONE engine call over heterogeneous worlds.

A call takes parameter rows (R, D), the world of each row and the episodes per row; env
``r * E + e`` runs row r's e-th episode. Every env's randomness (its engine key and its action
noise) is derived from the job that owns it, not from its position in the batch, so the same jobs
give the same numbers whether they run in one call (local backend) or split across calls (Ray).

Jobs are plain data (``EsJob``, ``EvalJob``) so they can be shipped to remote workers.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from autoworld import rng
from autoworld.learners.es import Adam
from autoworld.learners.soe import centred_ranks
from autoworld.poet.config import PoetError
from autoworld.poet.policy import (
    Antithetic,
    PoetPolicy,
    ViewLayout,
    sample_actions,
    take_units,
)

try:  # the bucketed builder groups worlds by component set; GridEngine is the fallback
    from autoworld.envs.grid.bucketed import make_engine
except ImportError:  # pragma: no cover - depends on the engine version installed
    from autoworld.envs.grid.engine import GridEngine as make_engine

_KEY_STREAM = 0x5EED


@dataclass
class WorldEntry:
    """A world known to the run: its spec and the oracle values of its validation levels."""

    spec: object
    optimal: list[float]
    random: list[float]


@dataclass
class EsJob:
    """One ES step of one pair."""

    agent: str
    world: str
    theta: torch.Tensor  # (D,)
    m: torch.Tensor  # (D,) Adam first moment
    v: torch.Tensor  # (D,) Adam second moment
    t: int  # Adam step count
    sigma: float
    lr: float
    seed: int  # derives the noise, levels and env keys of this step
    greedy: bool = False  # act by argmax (deterministic controllers, as in POET)
    train_levels: int = 512  # size of the world's train bank the rollouts draw levels from


@dataclass
class EsResult:
    agent: str
    theta: torch.Tensor
    m: torch.Tensor
    v: torch.Tensor
    t: int
    mean_return: float
    env_steps: int


@dataclass
class EvalJob:
    """Score one agent's weights on one world's validation levels."""

    agent: str
    world: str
    theta: torch.Tensor  # (D,)
    seed: int
    greedy: bool = False


def _job_keys(seed: int, n: int) -> torch.Tensor:
    """(n,) int64 per-env keys of one job."""
    base = rng.derive_seed(seed, "env-keys") & rng.MASK32
    return rng.hash32(torch.arange(n, dtype=torch.long) * 2 + 1 ^ base)


class RolloutEngine:
    """Runs parameter rows on worlds in one batched engine call; engines are cached by layout.

    ``cache_size``: engines kept, least recently used first out. A POET iteration uses two
    (the ES step on the train levels, the own-world scores on the validation levels), a
    transfer three more and a reproduction two; the default keeps an ordinary iteration's two
    through both, so the iteration after them does not build (and on CUDA record) them again.
    """

    def __init__(self, policy: PoetPolicy, device: str | torch.device = "cpu",
                 cache_size: int = 8, bucketing: str = "auto", cuda_graph: bool = False
                 ) -> None:
        self.policy = policy
        self.bucketing = bucketing
        self.device = torch.device(device)
        # recorded CUDA graphs of the engine steps: CUDA only (a no-op request on CPU)
        self.cuda_graph = bool(cuda_graph) and self.device.type == "cuda"
        self._engines: OrderedDict[tuple, object] = OrderedDict()
        self._layouts: dict[int, ViewLayout] = {}  # id of a cached engine -> its view layout
        self.cache_size = cache_size
        self.env_steps = 0

    def _engine(self, worlds: dict[str, WorldEntry], keys: list[str], env_world: list[int],
                split: str, bank_size: int | None):
        from autoworld.envs.grid.levels import bank

        sig = (split, bank_size, tuple(worlds[k].spec.content_hash for k in keys),
               tuple(env_world))
        eng = self._engines.get(sig)
        if eng is None:
            banks = [bank(worlds[k].spec, split, size=bank_size) for k in keys]
            specs = [policy_view(worlds[k].spec) for k in keys]
            kw = {} if make_engine.__name__ != "make_engine" else {"bucketing": self.bucketing}
            if self.cuda_graph:
                kw["cuda_graph"] = True
            eng = make_engine(specs, num_envs=len(env_world), device=self.device, seed=0,
                              world_ids=env_world, banks=banks, split=split, final_obs=False,
                              **kw)
            self._engines[sig] = eng
            self._layouts[id(eng)] = ViewLayout.of(specs, env_world, self.device)
            while len(self._engines) > self.cache_size:
                _, old = self._engines.popitem(last=False)
                del self._layouts[id(old)]
        else:
            self._engines.move_to_end(sig)
        return eng

    def view(self, eng, image: torch.Tensor) -> torch.Tensor:
        """The policy's (N, S, S) input from a cached engine's ``image``: the same for an env
        whatever worlds share its engine (``ViewLayout``)."""
        return self.policy.fit_view(image, self._layouts[id(eng)])

    @torch.no_grad()
    def returns(self, worlds: dict[str, WorldEntry], row_world: list[str],
                params: torch.Tensor | Antithetic, episodes: int, level_ids: torch.Tensor,
                env_keys: torch.Tensor, split: str, bank_size: int | None = None,
                greedy: torch.Tensor | None = None) -> torch.Tensor:
        """Undiscounted return of each env's first episode, (R, E) float64.

        ``params`` (R, D), or an ``Antithetic`` ES population standing for them;
        ``row_world`` the world key of each row; ``level_ids`` and ``env_keys`` (R*E,) the level
        (index in its world's bank) and random key of each env; ``greedy`` (R,) bool: rows that
        act by argmax instead of sampling.
        """
        R, E = params.shape[0], int(episodes)
        keys = sorted(set(row_world))
        index = {k: i for i, k in enumerate(keys)}
        env_world = [index[w] for w in row_world for _ in range(E)]
        eng = self._engine(worlds, keys, env_world, split, bank_size)
        obs = eng.reset(seed=0, level_ids=level_ids.to(self.device))
        env_keys = env_keys.to(self.device)
        _pin_env_keys(eng, env_keys)
        max_steps = max(int(worlds[k].spec.max_steps) for k in keys)
        N = R * E
        total = torch.zeros(N, dtype=torch.float64, device=self.device)
        alive = torch.ones(N, dtype=torch.bool, device=self.device)
        # a unit is the rows that share weights in memory (an antithetic pair, or one row);
        # units whose episodes all ended stop being computed (see _shrink)
        group = 2 if isinstance(params, Antithetic) else 1
        U = R // group
        unit_job = (params.unit_job() if isinstance(params, Antithetic)
                    else torch.arange(R)).to(self.device)
        full = self.policy.unpack(params.to(self.device))
        p, keep = full, None  # keep: (U',) computed units, None: all
        argmax_rows = None
        if greedy is not None and bool(greedy.any()):
            argmax_rows = greedy.to(self.device).repeat_interleave(E)  # (N,)
        S = self.policy.S
        for t in range(max_steps):
            sym = self.view(eng, obs["image"])  # (N, S, S)
            if keep is None:
                logits = self.policy.logits(p, sym.reshape(R, E, S, S)).reshape(N, -1)
            else:
                sub = sym.reshape(U, group * E, S, S).index_select(0, keep)
                sub = self.policy.logits(p, sub.reshape(-1, E, S, S))
                logits = torch.zeros(U, group * E, sub.shape[-1], device=self.device)
                logits[keep] = sub.reshape(keep.numel(), group * E, -1)
                logits = logits.reshape(N, -1)  # ended units: any action, reward is masked
            act = sample_actions(logits, env_keys, t)
            if argmax_rows is not None:
                act = torch.where(argmax_rows, logits.argmax(-1), act)
            obs, reward, terminated, truncated, _ = eng.step(act)
            total += torch.where(alive, reward.double(), 0.0)
            self.env_steps += N
            alive &= ~(terminated | truncated)
            if t % 8 == 7:
                if not bool(alive.any()):
                    break
                shrunk = _shrink(alive.reshape(U, group * E).any(1), keep, unit_job)
                if shrunk is not None:
                    keep = shrunk
                    p = take_units(full, keep, group, unit_job)
        return total.reshape(R, E).cpu()


def _shrink(live: torch.Tensor, keep: torch.Tensor | None, unit_job: torch.Tensor
            ) -> torch.Tensor | None:
    """The units to compute from now on, or None to keep ``keep``: a job drops its ended
    units once at most half of its computed units are still running. Decided per job from that
    job's own episodes, so a job's rollout (and its float rounding) does not depend on the other
    jobs of the call."""
    kept = torch.zeros_like(live)
    kept[keep if keep is not None else slice(None)] = True
    J = int(unit_job.max()) + 1
    n_kept = torch.bincount(unit_job[kept], minlength=J)
    n_live = torch.bincount(unit_job[kept & live], minlength=J)
    shrink = (n_live * 2 <= n_kept) & (n_live < n_kept)  # (J,)
    if not bool(shrink.any()):
        return None
    return (kept & (live | ~shrink[unit_job])).nonzero()[:, 0]


_UNREAD_OUTPUTS = ("rgb", "text")


def policy_view(spec):
    """``spec`` without the observation outputs the POET policy never reads (pixels, text), so
    the engine does not draw them; dynamics, rewards and the symbol view are unchanged, and the
    level banks still come from the original spec."""
    obs = [c for c in spec.observation if c.kind not in _UNREAD_OUTPUTS]
    if len(obs) == len(spec.observation) or not obs:
        return spec
    return spec.model_copy(update={"observation": obs})


def _pin_env_keys(engine, keys: torch.Tensor) -> None:
    """Give env b the random key ``keys[b]`` (and a zero draw counter) after a reset, so its
    stochastic transitions depend on its job, not on its place in the batch."""
    if not hasattr(engine, "set_env_keys"):
        raise PoetError(f"{type(engine).__name__} cannot take per-env random keys; POET needs "
                        "them for batch-independent rollouts")
    engine.set_env_keys(keys)


# ====================================================================== ES steps
def bank_size(jobs: list[EsJob]) -> int:
    """The train-bank size shared by the jobs of one call."""
    sizes = {j.train_levels for j in jobs}
    if len(sizes) != 1:
        raise PoetError(f"jobs of one call must share train_levels (got {sorted(sizes)})")
    return sizes.pop()


def es_noise(job: EsJob, half: int, out: torch.Tensor | None = None,
             device: str | torch.device = "cpu") -> torch.Tensor:
    """(half, D) noise vectors eps_i of a job's antithetic population (members +eps_i and
    -eps_i), drawn from the job's seed by a generator on ``device`` (the device the rollouts run
    on: a population of 512 is ~4M numbers per pair, too many to draw on the host and copy at
    every step); written into ``out`` (on ``device``) when given. Same seed and device, same
    noise; CPU and CUDA generators draw different numbers."""
    device = torch.device(device)
    gen = torch.Generator(device=device)
    gen.manual_seed(rng.derive_seed(job.seed, "noise") & 0x7FFFFFFFFFFFFFFF)
    return torch.randn(half, job.theta.numel(), generator=gen, out=out, device=device)


def run_es_steps(runner: RolloutEngine, worlds: dict[str, WorldEntry], jobs: list[EsJob],
                 population: int, episodes: int, l2: float) -> list[EsResult]:
    """One OpenAI-ES step for every job, all perturbed policies in one engine call.

    Every member of a job's population plays the same ``episodes`` levels with the same random
    keys (common random numbers); the fitness of a member is its mean return over them; the
    gradient is the centred-rank estimate minus ``l2 * theta``, applied with Adam. The
    population is never materialized as (J * P, D) rows (see ``policy.Antithetic``).
    """
    if not jobs:
        return []
    half = population // 2
    train_levels = bank_size(jobs)
    dev = runner.device
    eps = torch.empty(len(jobs), half, jobs[0].theta.numel(), device=dev)  # (J, half, D)
    row_world, levels, keys = [], [], []
    for i, job in enumerate(jobs):
        es_noise(job, half, out=eps[i], device=dev)
        row_world += [job.world] * population
        # common random numbers: every member plays the same levels with the same env keys and
        # action noise, so fitness differences come from the weights, not from luck
        lv = np.random.default_rng(rng.derive_seed(job.seed, "levels")).integers(
            0, train_levels, size=episodes)
        levels.append(torch.from_numpy(lv).repeat(population))
        keys.append(_job_keys(rng.derive_seed(job.seed, "rollout"), episodes).repeat(population))
    start = runner.env_steps
    greedy = torch.tensor([j.greedy for j in jobs]).repeat_interleave(population)
    rows = Antithetic(torch.stack([j.theta for j in jobs]), eps,
                      torch.tensor([float(j.sigma) for j in jobs]))  # the (J * P, D) rows
    ret = runner.returns(worlds, row_world, rows, episodes, torch.cat(levels),
                         torch.cat(keys), "train", bank_size=train_levels, greedy=greedy)
    spent = runner.env_steps - start
    out = []
    for i, job in enumerate(jobs):
        fitness = ret[i * population:(i + 1) * population].mean(1)  # (P,): +eps_0, -eps_0, ...
        grad = antithetic_gradient(eps[i], fitness, job.sigma).cpu() - l2 * job.theta
        adam = Adam(job.theta.numel(), job.lr)
        adam.m, adam.v, adam.t = job.m.clone(), job.v.clone(), job.t
        theta = job.theta + adam.step(grad)
        out.append(EsResult(job.agent, theta, adam.m, adam.v, adam.t, float(fitness.mean()),
                            spent // len(jobs)))
    return out


def antithetic_gradient(eps: torch.Tensor, fitness: torch.Tensor, sigma: float
                        ) -> torch.Tensor:
    """``learners.es.es_gradient`` for the antithetic population of ``eps`` (half, D) with
    fitness (P,) in member order (+eps_0, -eps_0, +eps_1, ...): the centred-rank estimate
    sum_i (shaped(+eps_i) - shaped(-eps_i)) eps_i / (P sigma), without the (P, D) noise."""
    shaped = centred_ranks(fitness).reshape(-1, 2)
    diff = (shaped[:, 0] - shaped[:, 1]).to(eps.device, eps.dtype)  # ranks on the host
    return (diff @ eps) / (fitness.numel() * sigma)


# ====================================================================== scoring
def run_evaluations(runner: RolloutEngine, worlds: dict[str, WorldEntry], jobs: list[EvalJob],
                    eval_episodes: int, levels: int) -> list[float]:
    """Normalized gain ``mean_levels (R - R_rand) / (R_opt - R_rand)`` of every job, all jobs
    in one engine call on the worlds' first ``levels`` validation levels."""
    from autoworld.envs.grid.scores import normalized_scores

    if not jobs:
        return []
    E = levels * eval_episodes
    lv = torch.arange(E) % levels
    ret = runner.returns(
        worlds, [j.world for j in jobs], torch.stack([j.theta for j in jobs]), E,
        lv.repeat(len(jobs)), torch.cat([_job_keys(j.seed, E) for j in jobs]), "validation",
        bank_size=levels, greedy=torch.tensor([j.greedy for j in jobs]))
    out = []
    for i, job in enumerate(jobs):
        per_level = ret[i].reshape(eval_episodes, levels).mean(0).numpy()
        w = worlds[job.world]
        _, gain = normalized_scores(per_level, np.asarray(w.optimal[:levels]),
                                    np.asarray(w.random[:levels]))
        out.append(float(np.clip(np.mean(gain), -1.0, 1.0)))
    return out


def timed(fn, *args, **kwargs):
    """(result, seconds) of a call."""
    start = time.perf_counter()
    res = fn(*args, **kwargs)
    return res, time.perf_counter() - start
