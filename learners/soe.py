"""The Selection-Optimization-Evaluation framework.

A learning method improves an *agent component* (policy weights, hyper-parameters, ...) held by a
pool of candidates. One iteration:

1. **Selection** picks which candidates to improve (``select_best``, ``select_pareto`` over
   (return, success, cost), ``select_tournament``);
2. **Optimization** (an ``Operator``) proposes new candidates from the selected ones;
3. **Evaluation** scores the proposals with batched rollouts (``PopulationEvaluator`` rolls a
   whole population of flat parameter vectors out in ONE engine: the policy is applied to every
   member with ``torch.func.functional_call`` under ``vmap``).

``soe_loop`` runs select -> optimize -> evaluate until a step budget is spent. Final, reported
scores come from ``autoworld.learners.evaluation.evaluate`` (validation levels, oracle-normalized).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from autoworld.envs.grid.engine import GridEngine
from autoworld.learners.policies import sample_actions

log = logging.getLogger(__name__)

# ====================================================================== candidates and pool
_ids = itertools.count()


@dataclass
class Candidate:
    """One improvable agent component and what its last evaluation measured.

    ``params`` is a flat parameter vector (D,) for weight-space methods; ``hparams`` holds
    hyper-parameters; ``state`` holds anything else an operator needs (a full ``state_dict``,
    an optimizer state, ...). Metrics: ``ret`` mean return (higher is better), ``success``
    fraction of episodes ending with a positive reward (higher), ``cost`` mean episode length in
    steps (lower is better).
    """

    params: torch.Tensor | None = None
    hparams: dict[str, float] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    ret: float = float("-inf")
    success: float = 0.0
    cost: float = float("inf")
    parent: int | None = None
    uid: int = field(default_factory=lambda: next(_ids))

    def objectives(self) -> tuple[float, float, float]:
        """The Pareto objectives, all to maximize: (return, success, -cost)."""
        return (self.ret, self.success, -self.cost)


class Pool:
    """A bounded pool of candidates (the population of a method)."""

    def __init__(self, candidates: Sequence[Candidate] = (), capacity: int | None = None) -> None:
        self.candidates: list[Candidate] = list(candidates)
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self.candidates)

    def __iter__(self):
        return iter(self.candidates)

    def add(self, new: Sequence[Candidate]) -> None:
        """Add candidates; past ``capacity`` keep the best by return (ties: earliest)."""
        self.candidates.extend(new)
        if self.capacity is not None and len(self.candidates) > self.capacity:
            self.candidates = select_best(self.candidates, self.capacity)

    def replace(self, new: Sequence[Candidate]) -> None:
        self.candidates = list(new)

    def best(self) -> Candidate:
        return select_best(self.candidates, 1)[0]


# ====================================================================== selection rules
def select_best(cands: Sequence[Candidate], k: int) -> list[Candidate]:
    """The ``k`` candidates of highest return (stable: ties keep pool order)."""
    order = sorted(range(len(cands)), key=lambda i: -cands[i].ret)
    return [cands[i] for i in order[:k]]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` Pareto-dominates ``b`` (all objectives maximized)."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(
        x > y for x, y in zip(a, b, strict=True))


def pareto_ranks(points: np.ndarray) -> np.ndarray:
    """Non-dominated sorting of ``points`` (N, M), every column maximized: rank 0 is the Pareto
    front, rank 1 the front once rank 0 is removed, and so on. Returns (N,) int64."""
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    ge = (pts[:, None, :] >= pts[None, :, :]).all(-1)
    gt = (pts[:, None, :] > pts[None, :, :]).any(-1)
    dom = ge & gt  # dom[i, j]: i dominates j
    ranks = np.full(n, -1, dtype=np.int64)
    remaining = np.ones(n, dtype=bool)
    r = 0
    while remaining.any():
        dominated = (dom & remaining[:, None]).any(0)
        front = remaining & ~dominated
        ranks[front] = r
        remaining &= ~front
        r += 1
    return ranks


def pareto_front(points: np.ndarray) -> list[int]:
    """Indices of the non-dominated rows of ``points`` (N, M), all columns maximized."""
    return [int(i) for i in np.flatnonzero(pareto_ranks(points) == 0)]


def select_pareto(cands: Sequence[Candidate], k: int) -> list[Candidate]:
    """Up to ``k`` candidates by Pareto rank over (return, success, -cost), return breaking ties
    within a rank."""
    if not cands:
        return []
    ranks = pareto_ranks(np.array([c.objectives() for c in cands]))
    order = sorted(range(len(cands)), key=lambda i: (ranks[i], -cands[i].ret))
    return [cands[i] for i in order[:k]]


def select_tournament(cands: Sequence[Candidate], k: int, size: int = 3,
                      rng: np.random.Generator | None = None) -> list[Candidate]:
    """``k`` winners of tournaments of ``size`` candidates drawn without replacement (with
    replacement across tournaments); the highest return wins each."""
    rng = np.random.default_rng(0) if rng is None else rng
    size = min(size, len(cands))
    out = []
    for _ in range(k):
        entrants = rng.choice(len(cands), size=size, replace=False)
        out.append(cands[max(entrants, key=lambda i: (cands[i].ret, -i))])
    return out


SELECTIONS: dict[str, Callable[..., list[Candidate]]] = {
    "best": select_best,
    "pareto": select_pareto,
    "tournament": select_tournament,
}


# ====================================================================== optimization
class Operator(Protocol):
    """An optimization operator: proposes new candidates from the selected ones.

    ``propose`` returns candidates whose metrics are not yet known; ``update`` receives them after
    evaluation (operators with internal state, such as ES or CEM, learn from it there). An
    operator with a true ``generational`` attribute replaces the pool with its proposals;
    otherwise they are added to it.
    """

    def propose(self, selected: list[Candidate]) -> list[Candidate]: ...

    def update(self, evaluated: list[Candidate]) -> None: ...


# ====================================================================== flat parameters
def flat_params(module: nn.Module) -> torch.Tensor:
    """The module's parameters as one detached vector (D,)."""
    return torch.nn.utils.parameters_to_vector(module.parameters()).detach().clone()


def load_flat(module: nn.Module, vec: torch.Tensor) -> nn.Module:
    """Write the flat vector (D,) into the module's parameters (in place) and return it."""
    with torch.no_grad():
        device = next(module.parameters()).device
        torch.nn.utils.vector_to_parameters(vec.to(device), module.parameters())
    return module


def stack_params(module: nn.Module, pop: torch.Tensor) -> dict[str, torch.Tensor]:
    """A (P, D) population of flat vectors as a dict of stacked parameters (P, *shape)."""
    out, i = {}, 0
    for name, p in module.named_parameters():
        n = p.numel()
        out[name] = pop[:, i:i + n].reshape(pop.shape[0], *p.shape)
        i += n
    return out


def policy_logits(out: Any) -> torch.Tensor:
    """The action logits of a policy output (a tensor, or a tuple/dict holding them first)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        return out["logits"]
    return out[0]


# ====================================================================== evaluation
class RolloutStats(BaseModel):
    """Per-member statistics of one population rollout."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ret: list[float] = Field(..., description="Mean episode return per member.")
    success: list[float] = Field(..., description="Fraction of episodes with positive return.")
    cost: list[float] = Field(..., description="Mean episode length (steps) per member.")
    env_steps: int = Field(..., ge=0, description="Engine env-steps spent by the rollout.")


class BudgetExhausted(Exception):
    """Raised by an evaluator that cannot score a set of candidates within the env-steps left:
    the loop stops there rather than overspend its budget."""


def fit_rollout(pop: int, episodes: int, budget: int | None, longest: int | None,
                max_steps: int) -> tuple[int, int]:
    """``(episodes, horizon)`` of a population rollout that spends at most ``budget`` env-steps.

    A rollout of ``pop`` members x ``episodes`` envs costs ``pop x episodes x`` (its longest
    episode). The longest episode of the previous rollout (``longest``; ``max_steps`` before the
    first) predicts this one's: when a full rollout would not fit, the episodes per member shrink
    to what does, and the horizon is capped so that the cost can never pass ``budget`` (an
    episode still running at the cap is scored on its return so far, the same cap for every
    member). Raises :class:`BudgetExhausted` when not one episode per member fits.
    """
    if budget is None:
        return episodes, max_steps
    est = max(1, min(max_steps, longest or max_steps))
    fit = min(episodes, int(budget) // (pop * est))
    if fit < 1:
        raise BudgetExhausted(f"{budget} env-steps left; {pop} candidates need about "
                              f"{pop * est}")
    return fit, min(max_steps, int(budget) // (pop * fit))


def end_check_every(device: torch.device | str) -> int:
    """Rollout steps between the checks that every episode has ended: each check waits for the
    device, so on a GPU one every 8 steps; on CPU it costs nothing, so every step. Rollouts
    that use it do not count the steps run past the last end, so their results do not depend
    on it."""
    return 1 if torch.device(device).type == "cpu" else 8


class PopulationEvaluator:
    """Evaluates a population of flat parameter vectors of one policy architecture in ONE engine
    of ``pop * episodes`` envs: member m owns envs [m*E, (m+1)*E), every member plays the same
    levels (common random numbers), by default the first E levels of the split at every call.
    Each env's first episode is scored. ``score(..., budget=N)`` never spends more than N
    env-steps (:func:`fit_rollout`)."""

    def __init__(self, spec, policy: nn.Module, *, episodes: int,
                 device: str | torch.device = "cpu", split: str = "train",
                 greedy: bool = False, fixed_levels: bool = True) -> None:
        self.spec = spec
        self.policy = policy
        self.episodes = int(episodes)
        self.device = torch.device(device)
        self.split = split
        self.greedy = greedy
        self.fixed_levels = fixed_levels
        self._engines: dict[int, GridEngine] = {}
        self._buffers = {k: v for k, v in policy.named_buffers()}
        self._vmap_ok = True
        self._longest: int | None = None  # longest episode of the last rollout
        self.check_every = end_check_every(self.device)

    def _engine(self, envs: int) -> GridEngine:
        eng = self._engines.get(envs)
        if eng is None:
            eng = GridEngine(self.spec, num_envs=envs, device=self.device,
                             split=self.split, final_obs=False)
            self._engines[envs] = eng
        return eng

    def _act_logits(self, params: dict[str, torch.Tensor], obs: dict[str, torch.Tensor],
                    pop: int, episodes: int) -> torch.Tensor:
        """(P*E, A) logits: member m's parameters applied to its own E observations."""
        from torch.func import functional_call, vmap

        per = {k: v.reshape(pop, episodes, *v.shape[1:]) for k, v in obs.items()}

        def one(p: dict[str, torch.Tensor], o: dict[str, torch.Tensor]) -> torch.Tensor:
            return policy_logits(functional_call(self.policy, (p, self._buffers), (o,)))

        if self._vmap_ok:
            try:
                return vmap(one)(params, per).reshape(pop * episodes, -1)
            except Exception as exc:  # noqa: BLE001 - a policy vmap cannot batch: loop members
                log.info("vmap over the population failed (%s); looping over members", exc)
                self._vmap_ok = False
        outs = [one({k: v[m] for k, v in params.items()}, {k: v[m] for k, v in per.items()})
                for m in range(pop)]
        return torch.cat(outs, 0)

    @torch.no_grad()
    def __call__(self, pop: torch.Tensor, seed: int, budget: int | None = None) -> RolloutStats:
        """Roll the (P, D) population out once; deterministic for ``seed``. With ``budget`` the
        rollout spends at most that many env-steps (fewer episodes per member, a capped
        horizon: :func:`fit_rollout`) or raises :class:`BudgetExhausted`."""
        P = pop.shape[0]
        E, horizon = fit_rollout(P, self.episodes, budget, self._longest,
                                 int(self.spec.max_steps))
        eng = self._engine(P * E)
        L = len(eng.banks[0])
        # fixed levels: every generation is scored on the same E levels (less noise between
        # generations); otherwise each seed moves on to the next E levels of the bank
        levels = (torch.arange(E) + (0 if self.fixed_levels else seed * E)) % L
        obs = eng.reset(seed=seed, level_ids=levels.repeat(P).to(eng.device))
        params = stack_params(self.policy, pop.to(eng.device))
        gen = torch.Generator(device=eng.device).manual_seed(seed)
        N = P * E
        total = torch.zeros(N, dtype=torch.float64, device=eng.device)
        length = torch.zeros(N, dtype=torch.float64, device=eng.device)
        alive = torch.ones(N, dtype=torch.bool, device=eng.device)
        live_steps = torch.zeros((), dtype=torch.long, device=eng.device)
        for t in range(horizon):
            logits = self._act_logits(params, obs, P, E)
            act = sample_actions(logits, generator=gen, greedy=self.greedy)
            obs, reward, terminated, truncated, _ = eng.step(act)
            total += torch.where(alive, reward.double(), 0.0)
            length += alive.double()
            live_steps += alive.any()  # a step counts while some episode is still running
            alive &= ~(terminated | truncated)
            if (t + 1) % self.check_every == 0 and not bool(alive.any()):
                break
        steps = int(live_steps) * N
        self._longest = steps // N
        ret = total.reshape(P, E)
        return RolloutStats(ret=ret.mean(1).tolist(), success=(ret > 0).double().mean(1).tolist(),
                            cost=length.reshape(P, E).mean(1).tolist(), env_steps=steps)

    def score(self, cands: list[Candidate], seed: int, budget: int | None = None) -> int:
        """Evaluate candidates with ``params`` in place; returns the env-steps spent (at most
        ``budget``; :class:`BudgetExhausted` when not one episode each fits)."""
        stats = self(torch.stack([c.params for c in cands]), seed, budget)
        for c, r, s, k in zip(cands, stats.ret, stats.success, stats.cost, strict=True):
            c.ret, c.success, c.cost = r, s, k
        return stats.env_steps


# ====================================================================== the loop
class LoopLog(BaseModel):
    """One iteration of ``soe_loop``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    iteration: int = Field(..., ge=0, description="Iteration index.")
    env_steps: int = Field(..., ge=0, description="Env-steps spent so far.")
    best_return: float = Field(..., description="Best return in the pool after the iteration.")
    mean_return: float = Field(..., description="Mean return of the proposals.")


def soe_loop(pool: Pool, select: Callable[[list[Candidate]], list[Candidate]],
             operator: Operator, evaluate: Callable[..., int], *,
             steps: int, seed: int = 0, max_iterations: int | None = None,
             on_iteration: Callable[[LoopLog], None] | None = None) -> list[LoopLog]:
    """Select -> optimize -> evaluate while env-steps of the budget ``steps`` are left.

    ``evaluate(candidates, seed, budget=left)`` scores candidates in place and returns the
    env-steps it spent, at most ``left``; it raises :class:`BudgetExhausted` when it cannot score
    them within that, which ends the loop (the unscored proposals are dropped). So the loop
    never spends more than ``steps``. The pool's candidates must already be evaluated. Returns
    the per-iteration log.
    """
    logs: list[LoopLog] = []
    spent = 0
    for it in itertools.count():
        if spent >= steps or (max_iterations is not None and it >= max_iterations):
            break
        selected = select(pool.candidates)
        proposals = operator.propose(selected)
        try:
            spent += evaluate(proposals, seed + 1 + it, budget=steps - spent)
        except BudgetExhausted:
            break
        operator.update(proposals)
        if getattr(operator, "generational", False):
            pool.replace(proposals)  # a new generation replaces the old one
        else:
            pool.add(proposals)
        entry = LoopLog(iteration=it, env_steps=spent, best_return=pool.best().ret,
                        mean_return=float(np.mean([c.ret for c in proposals])))
        logs.append(entry)
        if on_iteration is not None:
            on_iteration(entry)
    return logs


def search(theta: torch.Tensor, score: Callable[..., int],
           select: Callable[[list[Candidate]], list[Candidate]], operator: Operator, *,
           steps: int, seed: int = 0, capacity: int | None = 1,
           on_iteration: Callable[[LoopLog], None] | None = None
           ) -> tuple[Pool | None, list[LoopLog], int]:
    """A weight-space run from ``theta`` within ``steps`` env-steps: score the start, then
    ``soe_loop``. Returns the pool (None when not one episode of the start fits the budget:
    the start stays), the loop's log and the env-steps spent (at most ``steps``)."""
    first = Candidate(params=theta.clone())
    try:
        spent = score([first], seed, budget=steps)
    except BudgetExhausted:
        return None, [], 0
    pool = Pool([first], capacity=capacity)
    logs = soe_loop(pool, select, operator, score, steps=steps - spent, seed=seed,
                    on_iteration=on_iteration)
    return pool, logs, spent + (logs[-1].env_steps if logs else 0)


def centred_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks of ``x`` (N,) mapped linearly onto [-0.5, 0.5] (OpenAI-ES fitness shaping); equal
    values get the mean of their ranks."""
    x = x.double()
    n = x.numel()
    if n == 1:
        return torch.zeros(1, dtype=torch.float64)
    order = torch.argsort(x, stable=True)
    ranks = torch.empty(n, dtype=torch.float64)
    ranks[order] = torch.arange(n, dtype=torch.float64)
    for v in torch.unique(x):  # ties share a rank
        m = x == v
        if int(m.sum()) > 1:
            ranks[m] = ranks[m].mean()
    return ranks / (n - 1) - 0.5
