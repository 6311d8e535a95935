"""The bench driver: run a methods x worlds x seeds grid and fill the leaderboard store.

Resumable by construction: the grid is planned, the cells already finished in the store are
skipped, and each cell is written in its own transaction the moment it finishes, so a bench that
is killed loses at most the cells that were running. A runner is any picklable callable
``runner(cell) -> CellOutcome``; the default one trains with ``autoworld.learners.train``.
Executors: ``serial`` (in process), ``process`` (``concurrent.futures`` worker processes) and
``ray`` (imported lazily; the ``ray`` extra).
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import multiprocessing as mp
import os
import platform
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from autoworld.errors import AutoworldError
from autoworld.leaderboard.store import CellKey, RunRecord, RunStore, SessionTick, versions

logger = logging.getLogger(__name__)

Backend = Literal["serial", "process", "ray"]
BACKENDS: tuple[str, ...] = ("serial", "process", "ray")


class BenchError(AutoworldError):
    """A bench was asked for something it cannot do (unknown method/world, missing extra)."""


class CellOutcome(BaseModel):
    """What a runner returns for one cell: the scores of the trained agent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    score_opt: float = Field(description="Oracle-normalized score R / R_opt.")
    score_random: float | None = Field(
        None, description="(R - R_random) / (R_opt - R_random), when known."
    )
    raw_return: float | None = Field(None, description="Mean raw episode return.")
    success: float | None = Field(None, description="Fraction of successful episodes.")
    bound_flag: bool = Field(False, description="R_opt is not an exact optimum: a certified "
                             "upper bound on some validation level of a grid world (R / R_opt "
                             "is then conservative), or an arm world's scripted-expert return.")
    note: str = Field("", description="What a reader of the score should know (stored).")
    initial_score: float | None = Field(None, description="R / R_opt of the untrained policy.")
    env_steps: int | None = Field(None, ge=0, description="Env-steps the run spent.")
    num_envs: int | None = Field(None, ge=1, description="Parallel envs the run was given.")
    device: str = Field("", description="Torch device it trained on.")


Runner = Callable[[CellKey], CellOutcome]
ProgressFn = Callable[[RunRecord], None]


# -- selection --------------------------------------------------------------------------------


def _split(expr: str) -> list[str]:
    return [p.strip() for p in expr.split(",") if p.strip()]


def select_methods(expr: str, available: Sequence[str],
                   families: Sequence[str] = ()) -> list[str]:
    """``all`` or a comma list of registered method names, or members ``prefix:arg`` of the
    method families ``families`` (e.g. ``llm:gpt-4o-mini``). ``all`` is the registered methods
    only: a family member needs its argument (a model) spelled out."""
    if expr.strip() == "all":
        if not available:
            raise BenchError("--methods all: no learning methods are registered")
        return list(available)
    names = _split(expr)

    def known(name: str) -> bool:
        prefix, sep, arg = name.partition(":")
        return name in available or bool(sep and arg and prefix in families)

    unknown = [n for n in names if not known(n)]
    if unknown or not names:
        extra = "".join(f", {f}:<...>" for f in families)
        raise BenchError(f"--methods: unknown method(s) {', '.join(unknown) or expr!r}; "
                         f"choose from {', '.join(available)}{extra} (see `autoworld methods`)")
    return list(dict.fromkeys(names))


def select_worlds(
    expr: str, available: Sequence[str], tags_of: Callable[[str], Iterable[str]] | None = None
) -> list[str]:
    """``all``, or a comma list whose items are world names, glob patterns (``*Lava*``),
    ``tag:TAG`` (worlds with that taxonomy class, e.g. ``tag:partial``) or ``suite:NAME`` (a
    fixed list, :mod:`autoworld.leaderboard.suites`, e.g. ``suite:core36``); the union,
    sorted."""
    if tags_of is None:
        from autoworld.leaderboard.report import catalogue_tags

        def tags_of(w: str) -> Iterable[str]:
            return catalogue_tags(w).values()

    if expr.strip() == "all":
        return sorted(available)
    chosen: set[str] = set()
    for item in _split(expr):
        if item.startswith("tag:"):
            tag = item[4:]
            hits = {w for w in available if tag in set(tags_of(w))}
        elif item.startswith("suite:"):
            from autoworld.leaderboard.suites import SUITES

            if item[6:] not in SUITES:
                raise BenchError(f"--worlds: unknown suite {item[6:]!r}; use one of "
                                 f"{', '.join('suite:' + k for k in SUITES)}")
            hits = set(SUITES[item[6:]])
            missing = sorted(hits - set(available))
            if missing:
                raise BenchError(f"--worlds: {item} names worlds this catalogue lacks: "
                                 f"{', '.join(missing)}")
        elif any(ch in item for ch in "*?["):
            hits = set(fnmatch.filter(available, item))
        elif item in available:
            hits = {item}
        elif _is_arm_name(item):
            hits = {item}  # an arm world: ArmReach-N3 (arm catalogue) or ArmReach-arm3
        else:
            raise BenchError(f"--worlds: unknown world {item!r}; give names, a glob like "
                             "'*Lava*', tag:TAG, suite:NAME or all (see `autoworld list`)")
        if not hits:
            raise BenchError(f"--worlds: {item!r} matches no world (see `autoworld list`)")
        chosen |= hits
    if not chosen:
        raise BenchError("--worlds: nothing selected; use all, names, a glob or tag:TAG")
    return sorted(chosen)


def _is_arm_name(name: str) -> bool:
    from autoworld.errors import AutoworldError
    from autoworld.learners.arm_methods import arm_world_arg

    try:
        arm_world_arg(name)
    except (AutoworldError, ValueError):
        return False
    return True


def plan(methods: Sequence[str], worlds: Sequence[str], seeds: int | Sequence[int],
         steps: int) -> list[CellKey]:
    """The grid of (method, world, seed) cells whose method trains on the world (grid
    methods on grid worlds, arm methods on arm worlds; the end-effector-delta arm methods on
    those worlds only), in a stable order: seed by seed, world by world, every method of a
    world side by side. So a call cut short (``--time-limit``, a kill) leaves a grid that
    compares all the methods on the same worlds, and parallel workers run a mix of methods
    rather than many runs of one."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    return [CellKey(method=m, world=w, seed=s, steps=steps)
            for s in seed_list for w in worlds for m in methods if trains_on(m, w)]


def trains_on(method: str, world: str) -> bool:
    """Whether ``method`` can train on ``world``: the same family, and for the arm methods
    that emit end-effector deltas, a world of that interface."""
    if method_family(method) != world_family(world):
        return False
    if world_family(world) == "arm":
        from autoworld.learners.arm_methods import EE_DELTA_METHODS

        if method in EE_DELTA_METHODS:
            return _load_world(world).interface == "ee_delta"
    return True


def pending(store: RunStore, cells: Sequence[CellKey]) -> list[CellKey]:
    """The cells of ``cells`` not finished in ``store``."""
    done = store.finished_keys()
    return [c for c in cells if c not in done]


# -- running ----------------------------------------------------------------------------------


def _now() -> float:
    """The bench's clock (one name, so tests can stand in for it)."""
    return time.perf_counter()


def run_cell(runner: Runner, cell: CellKey) -> RunRecord:
    """Run one cell and turn its outcome (or its error) into a record. Runs in the worker."""
    start = _now()
    try:
        outcome = runner(cell)
        if not isinstance(outcome, CellOutcome):
            outcome = CellOutcome.model_validate(outcome)
        fields: dict[str, Any] = {**outcome.model_dump(), "status": "finished"}
    except Exception as exc:  # a failed cell is recorded and retried on resume
        logger.info("cell %s failed: %s", cell, exc)
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        fields = {"status": "failed", "error": last[:2000]}
    return RunRecord(**cell.model_dump(), **fields,
                     wall_time_s=_now() - start, **versions())


def run_bench(
    cells: Sequence[CellKey],
    store: RunStore,
    runner: Runner,
    backend: Backend = "serial",
    workers: int | None = None,
    on_result: ProgressFn | None = None,
    info: dict[str, object] | None = None,
    time_limit: float | None = None,
) -> list[RunRecord]:
    """Run the cells of ``cells`` not yet finished in ``store``; record each as it finishes.

    ``time_limit`` (seconds): start no cell that would end after it, judged by the mean wall
    time of this call's runs of the same method so far (of all its runs while the method has
    none; the first cells always start). A cell that would not fit is passed over for a later
    one of a quicker method that still does; running cells finish and the rest stay pending
    for the next call. The parallel backends keep at most ``workers`` cells in flight, so that
    no more start once the limit is near.

    A call with cells to run is a bench session in the store (``store.sessions()``): its wall
    time, up to its last recorded run, is written with each run, so the wall time of a grid
    filled over several calls is their sum. ``info`` is kept with the session (backend,
    workers and host are added).

    Returns the records written by this call (finished and failed)."""
    todo = pending(store, cells)
    if backend not in BACKENDS:
        raise BenchError(f"--backend: unknown backend {backend!r}; use one of "
                         f"{', '.join(BACKENDS)}")
    written: list[RunRecord] = []
    if not todo:
        return written
    session = store.open_session({**(info or {}), "backend": backend, "workers": workers,
                                  "host": platform.node(), "cells_planned": len(todo),
                                  "time_limit_s": time_limit})
    start = _now()
    gate = _Deadline(start, time_limit)

    def commit(record: RunRecord) -> None:
        # its own transaction, with the session's time: a kill after this loses nothing
        store.record(record, SessionTick(session, _now() - start))
        written.append(record)
        gate.record(record)
        if on_result is not None:
            on_result(record)

    if backend == "serial":
        queue = list(todo)
        while (cell := gate.take(queue)) is not None:
            commit(run_cell(runner, cell))
    elif backend == "process":
        _run_process(todo, runner, workers, commit, gate)
    else:
        _run_ray(todo, runner, workers, commit, gate)
    return written


class _Deadline:
    """Which cell may start now: any without a limit; else one whose expected wall time (the
    mean of this call's runs of its method, or of all its runs while the method has none; none
    yet: zero) still ends within ``limit`` seconds of ``start``."""

    def __init__(self, start: float, limit: float | None) -> None:
        self.start, self.limit = start, limit
        self.runs: list[float] = []
        self.by_method: dict[str, list[float]] = {}

    def record(self, run: RunRecord) -> None:
        self.runs.append(run.wall_time_s)
        self.by_method.setdefault(run.method, []).append(run.wall_time_s)

    def expected(self, cell: CellKey) -> float:
        own = self.by_method.get(cell.method) or self.runs
        return sum(own) / len(own) if own else 0.0

    def take(self, queue: list[CellKey]) -> CellKey | None:
        """Remove and return the first cell of ``queue`` that may start now (None: none)."""
        if self.limit is None:
            return queue.pop(0) if queue else None
        left = self.limit - (_now() - self.start)
        for i, cell in enumerate(queue):
            if self.expected(cell) <= left:
                return queue.pop(i)
        return None


def worker_threads(workers: int, cpus: int | None = None) -> int:
    """Torch threads per worker process: the machine's cores shared out, at least one.

    Every process would otherwise start as many threads as there are cores, and W workers on C
    cores would run W x C threads that preempt one another."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, workers))


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_process(todo: Sequence[CellKey], runner: Runner, workers: int | None,
                 commit: Callable[[RunRecord], None], gate: _Deadline) -> None:
    n = workers or os.cpu_count() or 1
    queue = list(todo)
    # spawn, not fork: a forked child cannot use CUDA, and fork under threads is unsafe
    with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn"),
                             initializer=_init_worker, initargs=(worker_threads(n),)) as pool:
        futures: set = set()

        def refill() -> None:  # at most n in flight, none that would end past the deadline
            while len(futures) < n and (cell := gate.take(queue)) is not None:
                futures.add(pool.submit(run_cell, runner, cell))

        refill()
        try:
            while futures:
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for fut in done:
                    commit(fut.result())
                refill()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def _run_ray(todo: Sequence[CellKey], runner: Runner, workers: int | None,
             commit: Callable[[RunRecord], None], gate: _Deadline) -> None:
    try:
        import ray
    except ImportError as exc:
        raise BenchError("--backend ray needs Ray: pip install 'autoworld[ray]'") from exc
    if not ray.is_initialized():
        ray.init(num_cpus=workers, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(run_cell)
    # every cell at once; with a time limit at most the cluster's CPUs in flight, so that none
    # starts past the deadline
    n = (len(todo) if gate.limit is None
         else workers or int(ray.cluster_resources().get("CPU", 1)))
    queue = list(todo)
    refs: list = []

    def refill() -> None:
        while len(refs) < n and (cell := gate.take(queue)) is not None:
            refs.append(remote.remote(runner, cell))

    refill()
    while refs:
        done, rest = ray.wait(refs, num_returns=1)
        refs[:] = rest
        for ref in done:
            commit(ray.get(ref))
        refill()


# -- the default runner: autoworld.learners -----------------------------------------------------


def available_methods() -> list[str]:
    """Names of the registered learning methods (grid and arm families)."""
    try:
        from autoworld.learners.methods import METHODS
    except ImportError as exc:
        raise BenchError("the learning methods are not available yet (autoworld.learners."
                         f"methods: {exc}); `autoworld bench` needs them") from exc
    return sorted(METHODS)


def method_family(name: str) -> str:
    """The world family a method trains on (``grid`` for family members like llm:MODEL)."""
    from autoworld.learners.methods import METHODS

    spec = METHODS.get(name)
    return spec.family if spec is not None else "grid"


def world_family(name: str) -> str:
    """``arm`` for arm worlds (arm catalogue names, ``Arm<Task>-<arm>``), else ``grid``."""
    from autoworld.envs.catalogue import list_worlds

    return "arm" if name.startswith("Arm") and name not in list_worlds() else "grid"


def method_families() -> list[str]:
    """Prefixes of the method families (``llm`` for ``llm:<model>``, ...)."""
    try:
        from autoworld.learners.methods import METHOD_FAMILIES
    except ImportError:
        return []
    return sorted(METHOD_FAMILIES)


def available_worlds() -> list[str]:
    """The catalogue worlds (arm worlds are chosen by name: ``select_worlds``)."""
    from autoworld.envs.catalogue import list_worlds

    return list_worlds()


_SCORE_NAMES = {
    "score_opt": ("score_opt", "score", "normalized", "normalized_score"),
    "score_random": ("score_random", "normalized_gain", "normalized_random", "gain"),
    "raw_return": ("raw_return", "mean_return", "return_", "episode_return"),
    "success": ("success", "success_rate"),
    "bound_flag": ("bound_flag", "upper_bound", "flagged"),
    "initial_score": ("initial_score",),
    "env_steps": ("env_steps",),
}


def outcome_from_result(result: Any) -> CellOutcome:
    """Read a ``TrainResult`` (or anything holding an evaluation with ``normalized`` /
    ``normalized_gain`` / ``mean_return`` / ``success``) into a :class:`CellOutcome`."""
    found: dict[str, Any] = {}
    for data in _levels_of(result):
        for key, names in _SCORE_NAMES.items():
            for name in names:
                if key not in found and isinstance(data.get(name), (int, float)):
                    found[key] = data[name]
        if len(found) == len(_SCORE_NAMES):
            break
    if "score_opt" not in found:
        raise BenchError(f"the training result {type(result).__name__} has no oracle-normalized "
                         "score (expected a field like 'normalized' or 'score_opt')")
    return CellOutcome(**found, note=_note(result))


def _note(result: Any) -> str:
    """The note a result carries for the leaderboard (a method that could not do its part)."""
    for data in _levels_of(result):
        if isinstance(data.get("no_demonstrations"), str):
            return f"no oracle demonstrations: {data['no_demonstrations']}"
    return ""


def _levels_of(result: Any) -> Iterator[dict[str, Any]]:
    """The fields of a result and of every dict or model nested in it, outermost first."""
    queue: list[Any] = [result]
    while queue:
        obj = queue.pop(0)
        data = obj if isinstance(obj, dict) else getattr(obj, "__dict__", {})
        yield data
        queue += [v for v in data.values() if isinstance(v, (dict, BaseModel))]


# Rollouts are sized to the budget (a run never passes its --steps). Large budgets keep the
# learners' defaults (256 envs); tiny cells use fewer envs, so that one rollout of 32 steps per
# env fits in them.
DEFAULT_NUM_ENVS = 256
MIN_STEPS_PER_ENV = 32


def budget_num_envs(steps: int, requested: int | None = None) -> int:
    """Parallel envs of a run with an env-step budget ``steps``: ``requested`` when given, else
    the default 256 capped so that one rollout of 32 steps per env fits the budget."""
    if requested is not None:
        return int(requested)
    return max(1, min(DEFAULT_NUM_ENVS, int(steps) // MIN_STEPS_PER_ENV))


@functools.lru_cache(maxsize=64)
def _load_world(name: str):
    """A catalogue world or spec file, parsed once per process (specs are immutable)."""
    from autoworld.envs.catalogue import load_world

    if world_family(name) == "arm":
        from autoworld.learners.arm_methods import arm_world_arg

        return arm_world_arg(name)
    return load_world(name)


def _is_family_method(name: str) -> bool:
    prefix, sep, arg = name.partition(":")
    return bool(sep and arg) and prefix in method_families()


def train_runner(cell: CellKey, device: str = "cpu", num_envs: int | None = None,
                 run_root: str | None = None, llm_base_url: str | None = None,
                 llm_workers: int | None = None) -> CellOutcome:
    """Train ``cell.method`` on ``cell.world`` with ``autoworld.learners.train.train``, or run a
    method-family member (``llm:<model>``: a language agent, evaluated, nothing trained)."""
    try:
        from autoworld.learners.train import train
    except ImportError as exc:
        raise BenchError("the learners are not available yet (autoworld.learners.train: "
                         f"{exc}); `autoworld bench` needs them to train") from exc
    run_dir = (str(Path(run_root) / cell.method.replace(":", "_").replace("/", "_") / cell.world
                   / f"seed{cell.seed}") if run_root is not None else None)
    world = _load_world(cell.world)
    if _is_family_method(cell.method):
        from autoworld.learners.methods import get_method

        overrides = {k: v for k, v in (("base_url", llm_base_url), ("max_workers", llm_workers))
                     if v is not None}
        result = get_method(cell.method).run(world, steps=cell.steps, seed=cell.seed,
                                             device=device, run_dir=run_dir, **overrides)
        outcome = outcome_from_result(result).model_copy(update={"device": str(device)})
        return _with_bound_flag(outcome, cell.world)
    envs = budget_num_envs(cell.steps, num_envs)
    kwargs: dict[str, Any] = {"method": cell.method, "steps": cell.steps, "seed": cell.seed,
                              "device": device, "num_envs": envs, "run_dir": run_dir}
    if cell.method == "ppo":
        # the rollout length rule of the PPO-based registered methods (learners.methods)
        from autoworld.learners.methods import MethodOptions, _ppo_config

        kwargs["config"] = _ppo_config(envs, MethodOptions(), cell.steps)
    result = train(world, **kwargs)
    outcome = outcome_from_result(result)
    taken = getattr(result, "steps", None)  # a TrainResult's env-steps taken
    outcome = outcome.model_copy(update={"num_envs": envs, "device": str(device),
                                         **({"env_steps": taken} if isinstance(taken, int)
                                            else {})})
    return _with_bound_flag(outcome, cell.world)


@functools.lru_cache(maxsize=256)
def r_opt_inexact(name: str) -> bool:
    """Whether the R_opt that normalizes ``name``'s scores is not an exact optimum: an arm
    world (its reference is a scripted expert's return), or a grid world with a validation
    level whose oracle gave a certified upper bound."""
    if world_family(name) == "arm":
        return True
    from autoworld.learners.evaluation import oracle_exact

    return not all(oracle_exact(_load_world(name), "validation"))


def _with_bound_flag(outcome: CellOutcome, world: str) -> CellOutcome:
    return outcome.model_copy(update={"bound_flag": outcome.bound_flag or r_opt_inexact(world)})


def make_train_runner(device: str = "cpu", num_envs: int | None = None,
                      run_root: str | None = None, llm_base_url: str | None = None,
                      llm_workers: int | None = None) -> Runner:
    """The default runner (picklable, for the process and ray backends)."""
    return functools.partial(train_runner, device=device, num_envs=num_envs, run_root=run_root,
                             llm_base_url=llm_base_url, llm_workers=llm_workers)


def check_learners() -> None:
    """Raise a clear :class:`BenchError` when ``autoworld.learners.train`` is missing."""
    try:
        import autoworld.learners.train  # noqa: F401
    except ImportError as exc:
        raise BenchError("the learners are not available yet (autoworld.learners.train: "
                         f"{exc}); `autoworld bench` needs them to train") from exc
