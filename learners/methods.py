"""The registry of learning methods: named Selection x Optimization x Component combinations.

Every method has one entry point, ``run(world, steps, num_envs, seed, device, run_dir)``, that
trains from a fresh policy within ``steps`` env-steps and returns a ``MethodResult`` with the
oracle-normalized score of the initial and the final policy on the world's validation levels
(``learners.evaluation.evaluate``). ``docs/methods.md`` tabulates the registry.

Example:
    >>> from autoworld.learners.methods import METHODS
    >>> sorted(METHODS)[:3]
    ['bc', 'bc+ppo', 'cem']
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from autoworld.errors import AutoworldError
from autoworld.learners.checkpoint import add_scalars, fresh_tensorboard
from autoworld.learners.policies import ActorCritic, PolicyConfig, policy_from_spec

log = logging.getLogger(__name__)


class MethodError(AutoworldError):
    """An unknown method name or a method that cannot run on a world."""


class MethodOptions(BaseModel):
    """Knobs shared by every method (each method keeps its own defaults for the rest)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="Network of every "
                                 "candidate.")
    eval_episodes: int = Field(8, ge=1, description="Validation episodes per level for the "
                               "initial and final scores.")
    greedy_eval: bool | None = Field(None, description="Score with argmax actions instead of "
                                     "sampling (None: the method's own rule; weight-space "
                                     "methods search deterministic policies and act greedily).")
    population: int | None = Field(None, ge=2, description="Population size of population "
                                   "methods (None: the method's default).")
    bc_levels: int = Field(64, ge=1, description="Oracle demonstrations cloned by BC methods.")
    test_eval: bool = Field(False, description="Also score the final policy on the test "
                            "levels (``MethodResult.test_score``), for reports that select "
                            "on validation.")


class MethodResult(BaseModel):
    """What one run of a method achieved."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str = Field(..., description="Registered method name.")
    world: str = Field(..., description="World name.")
    seed: int = Field(..., description="Root seed of the run.")
    steps: int = Field(..., ge=0, description="Env-step budget.")
    env_steps: int = Field(..., ge=0, description="Env-steps the learner's own policies "
                           "spent learning, at most ``steps`` (the oracle's demonstrations and "
                           "scoring episodes are not counted: BC and language agents spend "
                           "none).")
    initial_score: float = Field(..., description="Normalized score (R / R_opt) of the initial "
                                 "policy on validation levels.")
    score: float = Field(..., description="Normalized score (R / R_opt) of the final policy.")
    normalized_gain: float = Field(..., description="(R - R_rand) / (R_opt - R_rand) of the "
                                   "final policy.")
    mean_return: float = Field(..., description="Mean validation return of the final policy.")
    success: float = Field(..., description="Validation success rate of the final policy.")
    initial_test_score: float | None = Field(None, description="R / R_opt of the initial "
                                             "policy on the test levels (with test_eval).")
    test_score: float | None = Field(None, description="R / R_opt of the final policy on the "
                                     "test levels (when ``MethodOptions.test_eval``).")
    seconds: float = Field(..., ge=0, description="Wall-clock time of the run.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Method-specific facts.")


RunFn = Callable[..., MethodResult]


@dataclass(frozen=True)
class MethodSpec:
    """A registered learning method."""

    name: str
    selection: Literal["best", "pareto", "tournament"]
    optimization: str
    component: str
    description: str
    run: RunFn = field(repr=False)
    family: str = "grid"  # the world family the method trains on ("grid" or "arm")

    def row(self) -> dict[str, str]:
        """The JSON-able description (without the callable)."""
        return {"name": self.name, "family": self.family, "selection": self.selection,
                "optimization": self.optimization, "component": self.component,
                "description": self.description}


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method; duplicate names are refused."""
    if spec.name in METHODS:
        raise MethodError(f"method {spec.name!r} is already registered")
    METHODS[spec.name] = spec
    return spec


def get_method(name: str) -> MethodSpec:
    """The registered method ``name``, or the member ``family:arg`` of a method family."""
    if name in METHODS:
        return METHODS[name]
    family, sep, arg = name.partition(":")
    if sep and family in METHOD_FAMILIES:
        if not arg:
            raise MethodError(f"method {name!r}: {METHOD_FAMILIES[family].pattern} needs the part "
                              "after the colon")
        return METHOD_FAMILIES[family].make(name)
    raise MethodError(f"unknown method {name!r}; use one of {', '.join(sorted(METHODS))}, or "
                      + " / ".join(f.pattern for f in METHOD_FAMILIES.values()))


@dataclass(frozen=True)
class MethodFamily:
    """Methods named ``prefix:arg`` (e.g. ``llm:gpt-4o-mini``), made on demand by ``make``."""

    prefix: str
    pattern: str
    description: str
    make: Callable[[str], MethodSpec] = field(repr=False)


METHOD_FAMILIES: dict[str, MethodFamily] = {}


def register_family(family: MethodFamily) -> MethodFamily:
    """Add a method family; duplicate prefixes are refused."""
    if family.prefix in METHOD_FAMILIES:
        raise MethodError(f"method family {family.prefix!r} is already registered")
    METHOD_FAMILIES[family.prefix] = family
    return family


# ====================================================================== shared plumbing
def _world(world):
    if isinstance(world, str):
        from autoworld.envs.catalogue import load_world

        return load_world(world)
    return world


def _fresh_policy(spec, config: PolicyConfig, seed: int) -> ActorCritic:
    from autoworld import rng
    from autoworld.envs.grid.engine import GridEngine

    if config.recurrent:
        raise MethodError("weight-space methods evaluate feed-forward policies only; unset "
                          "PolicyConfig.recurrent")
    obs_spec = GridEngine(spec, num_envs=1, final_obs=False).observation_spec()
    with torch.random.fork_rng(devices=[]):  # seeded init, global RNG untouched
        torch.manual_seed(rng.derive_seed(seed, "policy-init") & 0x7FFFFFFF)
        return policy_from_spec(obs_spec, config)


# where a method run reports its progress (``progress``): ``autoworld train``'s live display
_PROGRESS: contextvars.ContextVar[Callable[[dict[str, Any]], None] | None] = \
    contextvars.ContextVar("method_progress", default=None)


@contextlib.contextmanager
def progress(callback: Callable[[dict[str, Any]], None] | None) -> Iterator[None]:
    """Within the block, method runs call ``callback`` with records like ``train``'s: ``kind``
    ``train`` (``step`` = env-steps so far, ``steps_per_second``, ``episode_return`` = the
    iteration's mean return, and the method's own fields) after every iteration, generation
    or round, and ``kind`` ``eval`` with the final validation scores."""
    token = _PROGRESS.set(callback)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


class _Run:
    """Bookkeeping of one method run: the initial score, metrics.jsonl, the final result."""

    def __init__(self, name: str, spec, steps: int, seed: int, device: str,
                 run_dir: str | Path | None, options: MethodOptions, greedy: bool = False) -> None:
        self.name, self.spec, self.steps, self.seed = name, spec, steps, seed
        self.device, self.options = device, options
        self.greedy = greedy if options.greedy_eval is None else options.greedy_eval
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.start = time.perf_counter()
        self.initial: float | None = None
        self.initial_test: float | None = None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "metrics.jsonl").write_text("", encoding="utf-8")

    def evaluate(self, policy: ActorCritic, split: str = "validation"):
        from autoworld.learners.evaluation import evaluate

        return evaluate(policy, self.spec, split, self.options.eval_episodes,
                        self.device, seed=self.seed, greedy=self.greedy)

    def score_initial(self, policy: ActorCritic) -> None:
        """Score the untrained policy (validation; test too with ``test_eval``)."""
        self.initial = self.evaluate(policy).normalized
        if self.options.test_eval:
            self.initial_test = self.evaluate(policy, "test").normalized

    def log(self, row: BaseModel | dict) -> None:
        data = row.model_dump() if isinstance(row, BaseModel) else row
        callback = _PROGRESS.get()
        if callback is not None and "env_steps" in data:
            rec = {"kind": "train", **data, "step": int(data["env_steps"])}
            rec.setdefault("episode_return", data.get("mean_return"))
            rec.setdefault("steps_per_second",
                           rec["step"] / max(1e-9, time.perf_counter() - self.start))
            callback(rec)
        if self.run_dir is None:
            return
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(data, default=float) + "\n")
        tb = self._tensorboard()
        if tb is not None and "env_steps" in data:
            add_scalars(tb, data, "train", int(data["env_steps"]), skip=("env_steps",))

    def _tensorboard(self):
        """The run's TensorBoard writer (``run_dir/tb``), made on first use; None without a
        run directory or without tensorboard installed."""
        if not hasattr(self, "_tb"):
            self._tb = fresh_tensorboard(self.run_dir)
        return self._tb

    def finish(self, policy: ActorCritic, env_steps: int, **extra: Any) -> MethodResult:
        res = self.evaluate(policy)
        tb = self._tensorboard() if self.run_dir is not None else None
        if tb is not None:
            add_scalars(tb, {k: getattr(res, k) for k in ("mean_return", "success",
                                                          "normalized", "normalized_gain")},
                        "eval", int(env_steps))
            tb.close()
        callback = _PROGRESS.get()
        if callback is not None:
            callback({"kind": "eval", "step": int(env_steps), "mean_return": res.mean_return,
                      "success": res.success, "normalized": res.normalized,
                      "normalized_gain": res.normalized_gain})
        test = self.evaluate(policy, "test").normalized if self.options.test_eval else None
        out = MethodResult(method=self.name, world=self.spec.name, seed=self.seed,
                           steps=self.steps, env_steps=int(env_steps),
                           initial_score=float(self.initial if self.initial is not None
                                               else float("nan")),
                           score=res.normalized, normalized_gain=res.normalized_gain,
                           mean_return=res.mean_return, success=res.success, test_score=test,
                           initial_test_score=self.initial_test,
                           seconds=time.perf_counter() - self.start, extra=extra)
        if self.run_dir is not None:
            from autoworld.learners.checkpoint import atomic_write_text, save_policy

            save_policy(policy, self.run_dir / "policy", spec_hash=self.spec.content_hash,
                        method=self.name, world=self.spec.name)
            atomic_write_text(self.run_dir / "result.json", out.model_dump_json(indent=1) + "\n")
        return out


def _episodes(num_envs: int, population: int) -> int:
    return max(1, num_envs // (population + 1))


# ====================================================================== weight-space methods
def _run_weight_space(name: str, kind: str, selection: str, world, steps: int, num_envs: int,
                      seed: int, device: str, run_dir, options: MethodOptions | None
                      ) -> MethodResult:
    from autoworld.learners import soe
    from autoworld.learners.cem import CEMConfig, CEMOperator
    from autoworld.learners.es import ESConfig, ESOperator
    from autoworld.learners.genetic import GAConfig, MutationOperator

    options = options or MethodOptions()
    spec = _world(world)
    run = _Run(name, spec, steps, seed, device, run_dir, options, greedy=True)
    policy = _fresh_policy(spec, options.policy, seed).to(device)
    run.score_initial(policy)
    theta = soe.flat_params(policy).cpu()  # operators keep their search state on the host
    pop_kw = {} if options.population is None else {"population": options.population}
    rng = np.random.default_rng(seed)
    if kind == "es":
        cfg = ESConfig(pareto=selection == "pareto", **pop_kw)
        cfg = cfg.model_copy(update={"episodes": _episodes(num_envs, cfg.population)})
        op: Any = ESOperator(theta, cfg, seed=seed)
    elif kind == "cem":
        cfg = CEMConfig(**pop_kw)
        cfg = cfg.model_copy(update={"episodes": _episodes(num_envs, cfg.population)})
        op = CEMOperator(theta, cfg, seed=seed)
    else:
        cfg = GAConfig(**pop_kw)
        cfg = cfg.model_copy(update={"episodes": _episodes(num_envs, cfg.population)})
        op = MutationOperator(cfg, seed=seed)
    if kind == "ga":
        k = cfg.parents
        rules = {"best": lambda c: soe.select_best(c, k),
                 "pareto": lambda c: soe.select_pareto(c, k),
                 "tournament": lambda c: soe.select_tournament(c, k, 3, rng)}
        select = rules[selection]
    else:
        select = lambda c: soe.select_best(c, 1)  # noqa: E731 - the centre lives in the operator
    evaluator = soe.PopulationEvaluator(spec, policy, episodes=cfg.episodes, device=device,
                                        greedy=run.greedy)
    pool, logs, spent = soe.search(theta, evaluator.score, select, op, steps=steps, seed=seed,
                                   capacity=None if kind == "ga" else 1, on_iteration=run.log)
    final = (op.theta if kind == "es" else op.mean if kind == "cem"
             else pool.best().params if pool is not None else theta)
    soe.load_flat(policy, final)
    return run.finish(policy, spent, generations=len(logs), greedy=run.greedy,
                      config=cfg.model_dump())


# ====================================================================== PPO-based methods
def _ppo_config(num_envs: int, options: MethodOptions, steps: int):
    from autoworld.learners.ppo import PPOConfig

    num_steps = 128 if steps >= 128 * num_envs * 8 else 32
    return PPOConfig(num_envs=num_envs, num_steps=num_steps, policy=options.policy)


def _run_ppo_like(name: str, world, steps: int, num_envs: int, seed: int, device: str, run_dir,
                  options: MethodOptions | None, *, bc_first: bool = False,
                  pbt: bool = False) -> MethodResult:
    from autoworld.learners.ppo import PPO

    options = options or MethodOptions()
    spec = _world(world)
    run = _Run(name, spec, steps, seed, device, run_dir, options)
    cfg = _ppo_config(num_envs, options, steps)  # PBT fits it to each member's share
    extra: dict[str, Any] = {}
    if pbt:
        from autoworld.learners.pbt import PBTConfig, run_pbt

        pcfg = PBTConfig(**({} if options.population is None
                            else {"population": options.population}))
        init = PPO(spec, cfg.model_copy(update={"num_envs": 1}), 1, device=device,
                   seed=seed * 1000)  # member 0's initial weights
        run.score_initial(init.policy)
        learner, logs = run_pbt(spec, cfg, pcfg, steps, device=device, seed=seed,
                                on_round=run.log)
        spent = logs[-1].env_steps if logs else 0
        extra["hparams"] = logs[-1].hparams if logs else []
        return run.finish(learner.policy, spent, **extra)
    learner = PPO(spec, cfg, steps, device=device, seed=seed, cap=True)
    run.score_initial(learner.policy)
    if bc_first:
        from autoworld.learners.bc import (
            BCConfig,
            DemonstrationError,
            accuracy,
            clone,
            collect_demonstrations,
        )

        try:
            demos = collect_demonstrations(spec, options.bc_levels, device=device, seed=seed)
        except DemonstrationError as exc:  # no plans here: PPO from scratch, said in the result
            extra["no_demonstrations"] = str(exc).removeprefix(f"{spec.name}: ")
        else:
            clone(learner.policy, demos, BCConfig(), seed=seed)
            extra["bc_accuracy"] = accuracy(learner.policy, demos)
            extra["bc_score"] = run.evaluate(learner.policy).normalized
    while learner.iteration < learner.num_iterations:
        stats = learner.iterate()
        run.log({"iteration": learner.iteration, "env_steps": learner.global_step, **stats})
    return run.finish(learner.policy, learner.global_step, **extra)


def _run_bc(name: str, world, steps: int, num_envs: int, seed: int, device: str, run_dir,
            options: MethodOptions | None) -> MethodResult:
    from autoworld.learners.bc import (
        BCConfig,
        DemonstrationError,
        accuracy,
        clone,
        collect_demonstrations,
    )

    options = options or MethodOptions()
    spec = _world(world)
    run = _Run(name, spec, steps, seed, device, run_dir, options)
    policy = _fresh_policy(spec, options.policy, seed).to(device)
    run.score_initial(policy)
    try:
        demos = collect_demonstrations(spec, options.bc_levels, device=device, seed=seed)
    except DemonstrationError as exc:
        # nothing to clone: the method leaves its initial policy, and says why, so that a
        # leaderboard over all worlds has this cell (scored as what BC can do here) instead of
        # a failure retried forever
        return run.finish(policy, 0, demonstrations=0, levels=0,
                          no_demonstrations=str(exc).removeprefix(f"{spec.name}: "))
    losses = clone(policy, demos, BCConfig(), seed=seed)
    for epoch, loss in enumerate(losses):
        run.log({"epoch": epoch, "loss": loss})
    # BC spends no env-steps learning: the oracle's demonstrations (their replay through the
    # engine) are not the learner's interaction, as in bc+ppo; their count is in the result
    return run.finish(policy, 0, accuracy=accuracy(policy, demos),
                      demonstrations=int(demos.actions.shape[0]), levels=demos.levels)


# ====================================================================== the registry
def _weight_space(name: str, kind: str, selection: str) -> RunFn:
    def run(world, steps: int = 100_000, num_envs: int = 64, seed: int = 0, device: str = "cpu",
            run_dir=None, options: MethodOptions | None = None) -> MethodResult:
        return _run_weight_space(name, kind, selection, world, steps, num_envs, seed, device,
                                 run_dir, options)

    return run


def _ppo_family(name: str, **flags: bool) -> RunFn:
    def run(world, steps: int = 100_000, num_envs: int = 64, seed: int = 0, device: str = "cpu",
            run_dir=None, options: MethodOptions | None = None) -> MethodResult:
        return _run_ppo_like(name, world, steps, num_envs, seed, device, run_dir, options,
                             **flags)

    return run


def _bc_run(world, steps: int = 100_000, num_envs: int = 64, seed: int = 0, device: str = "cpu",
            run_dir=None, options: MethodOptions | None = None) -> MethodResult:
    return _run_bc("bc", world, steps, num_envs, seed, device, run_dir, options)


W, HP = "policy weights", "policy weights + PPO hyper-parameters"
for _spec in (
    MethodSpec("ppo", "best", "PPO (GAE, clipped objective)", W,
               "One PPO learner on vectorized rollouts.", _ppo_family("ppo")),
    MethodSpec("ppo-pbt", "best", "PBT exploit/explore over PPO", HP,
               "A population of PPO learners; the bottom quarter copies a top member and "
               "perturbs its hyper-parameters.", _ppo_family("ppo-pbt", pbt=True)),
    MethodSpec("es", "best", "OpenAI-ES (antithetic, centred ranks, Adam)", W,
               "A Gaussian search around one centre, ranked by return.",
               _weight_space("es", "es", "best")),
    MethodSpec("es-pareto", "pareto", "OpenAI-ES (antithetic, centred ranks, Adam)", W,
               "ES ranking perturbations by Pareto front over (return, success, -length).",
               _weight_space("es-pareto", "es", "pareto")),
    MethodSpec("cem", "best", "Cross-entropy method (diagonal Gaussian)", W,
               "Refit a Gaussian over weights to the elite quarter of each sample.",
               _weight_space("cem", "cem", "best")),
    MethodSpec("ga", "best", "Gaussian mutation, elitism", W,
               "Mutation-only GA with truncation selection of the top parents.",
               _weight_space("ga", "ga", "best")),
    MethodSpec("ga-tournament", "tournament", "Gaussian mutation, elitism", W,
               "Mutation-only GA whose parents win size-3 tournaments.",
               _weight_space("ga-tournament", "ga", "tournament")),
    MethodSpec("ga-pareto", "pareto", "Gaussian mutation, elitism", W,
               "Mutation-only GA whose parents are the best Pareto ranks over (return, "
               "success, -length).", _weight_space("ga-pareto", "ga", "pareto")),
    MethodSpec("bc", "best", "Behaviour cloning of oracle plans", W,
               "Cross-entropy on (observation, optimal action) pairs; no reward signal.",
               _bc_run),
    MethodSpec("bc+ppo", "best", "Behaviour cloning, then PPO", W,
               "Clone oracle plans, then fine-tune with PPO on the reward.",
               _ppo_family("bc+ppo", bc_first=True)),
):
    register(_spec)


# ====================================================================== language agents
def _llm_method(name: str) -> MethodSpec:
    """The language agent ``llm:<model>`` / ``llm-hf:<dir>`` (``learners/llm_agent.py``)."""

    def run(world, steps: int = 0, num_envs: int = 1, seed: int = 0, device: str = "cpu",
            run_dir=None, options: MethodOptions | None = None, **overrides: Any
            ) -> MethodResult:
        from autoworld.learners.llm_agent import run_method

        return run_method(name, world, steps, num_envs, seed, device, run_dir, options,
                          **overrides)

    return MethodSpec(name, "best", "none (in-context policy of a frozen LLM)",
                      "LLM prompt", "A language model chooses every action from a text "
                      "observation; nothing is trained.", run)


for _family in (
    MethodFamily("llm", "llm:<model>", "A model served by an OpenAI-compatible endpoint "
                 "($AUTOWORLD_LLM_BASE_URL or --llm-base-url) acting on text observations.",
                 _llm_method),
    MethodFamily("llm-hf", "llm-hf:<model dir>", "A local Hugging Face causal LM acting on "
                 "text observations (constrained choice of the action number).", _llm_method),
):
    register_family(_family)


def grid_methods() -> list[str]:
    """Names of the registered methods that train on grid worlds (the catalogue's family)."""
    return sorted(n for n, m in METHODS.items() if m.family == "grid")


def _register_arm_methods() -> None:
    import sys

    if "autoworld.learners.arm_methods" in sys.modules:
        return  # being imported first: it registers its methods when it finishes
    from autoworld.learners.arm_methods import register as register_arm

    register_arm()


_register_arm_methods()
