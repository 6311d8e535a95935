"""The training driver behind ``autoworld train`` and the leaderboard's bench cells.

``train(world, method="ppo", ...)`` runs a learner in a run directory:

- ``metrics.jsonl``: one JSON object per iteration (step, wall time, steps/s, training stats) and
  per evaluation (validation return and oracle-normalized scores);
- TensorBoard event files under ``tb/`` when ``tensorboard`` is installed (skipped otherwise);
- ``checkpoint/``: ``policy.safetensors`` + ``policy.json`` (see ``checkpoint.py``) and
  ``state.pt`` (optimizer, RNG states, engine state, counters), all written atomically;
- ``result.json``: the final ``TrainResult``.

``resume=True`` reloads the checkpoint and continues exactly where it stopped (for PPO, the same
weights and metrics as an uninterrupted run). Methods other than ``ppo`` are looked up in
``autoworld.learners.methods.METHODS`` when that registry exists; such an entry is a callable
with this function's keyword arguments that returns a ``TrainResult``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from autoworld.errors import AutoworldError
from autoworld.learners.checkpoint import (
    add_scalars,
    atomic_write_text,
    fresh_tensorboard,
    load_state,
    save_policy,
    save_state,
)
from autoworld.learners.evaluation import EvalResult, evaluate
from autoworld.learners.ppo import PPO, PPOConfig

log = logging.getLogger(__name__)

Callback = Callable[[dict[str, Any]], None]


class TrainError(AutoworldError):
    """A training run cannot start or resume (unknown method, mismatched checkpoint, ...)."""


class TrainResult(BaseModel):
    """Outcome of one training run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    world: str = Field(..., description="World name.")
    spec_hash: str = Field(..., description="Content hash of the world spec.")
    method: str = Field(..., description="Learning method.")
    seed: int = Field(..., description="Root seed.")
    steps: int = Field(..., ge=0, description="Environment steps taken.")
    wall_time: float = Field(..., ge=0, description="Seconds of training in this process.")
    run_dir: str | None = Field(None, description="Run directory (None: nothing written).")
    checkpoint: str | None = Field(None, description="Path of the saved policy weights.")
    score: float = Field(..., description="Final validation R / R_opt.")
    normalized_gain: float = Field(..., description="Final validation "
                                   "(R - R_rand) / (R_opt - R_rand).")
    mean_return: float = Field(..., description="Final mean validation return.")
    success: float = Field(..., description="Final validation success rate.")
    evaluation: EvalResult | None = Field(None, description="Final validation evaluation "
                                          "(PPO runs of this driver).")
    extra: dict[str, Any] = Field(default_factory=dict, description="Method-specific facts.")


def _metrics_writer(run_dir: Path | None):
    """A (write, close) pair appending JSON lines (and TensorBoard scalars when available).
    TensorBoard's events are rebuilt from the ``metrics.jsonl`` already there (a resumed run's,
    truncated at its checkpoint), so they never hold a killed run's tail: its ``purge_step``
    would depend on the order of the event files' names, which same-second writers of one
    process do not keep."""
    if run_dir is None:
        return (lambda rec: None), (lambda: None)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "metrics.jsonl"
    kept = [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip()] if path.is_file() else []
    fh = path.open("a", encoding="utf-8")
    tb = fresh_tensorboard(run_dir)

    def scalars(rec: dict[str, Any]) -> None:
        add_scalars(tb, rec, rec.get("kind", "train"), rec["step"], skip=("step",))

    if tb is not None:
        for rec in kept:
            scalars(rec)

    def write(rec: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in rec.items()}
        fh.write(json.dumps(clean, sort_keys=True) + "\n")
        fh.flush()
        if tb is not None:
            scalars(rec)

    def close() -> None:
        fh.close()
        if tb is not None:
            tb.close()

    return write, close


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after the checkpoint at ``step`` (a killed run's tail), so that
    a resumed run's metrics.jsonl matches an uninterrupted one."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a half-written last line
        if rec.get("step", 0) <= step:
            keep.append(line)
    atomic_write_text(path, "".join(f"{ln}\n" for ln in keep))


def train(world, method: str = "ppo", steps: int = 200_000, num_envs: int | None = 256,
          seed: int = 0, device: str | torch.device = "cpu", run_dir: str | Path | None = None,
          resume: bool = False, config: PPOConfig | None = None, eval_every: int = 10,
          eval_episodes: int = 8, checkpoint_every: int = 10,
          callback: Callback | None = None, options: Any = None) -> TrainResult:
    """Train ``method`` on ``world`` for ``steps`` environment steps.

    Args:
        world: a world spec or a catalogue name.
        method: ``ppo``, or a name registered in ``autoworld.learners.methods.METHODS``.
        steps: env-step budget, never passed: PPO runs the whole rollouts that fit in it (a
            budget under one rollout gets fewer envs), weight-space methods fit their last
            generation to what is left.
        num_envs: parallel envs (overrides ``config.num_envs``; None: the config's, 256 for
            the other methods).
        seed: root seed.
        device: torch device.
        run_dir: where metrics and checkpoints go (None: nothing is written).
        resume: continue from ``run_dir``'s checkpoint when there is one.
        config: PPO hyper-parameters (defaults otherwise).
        eval_every: iterations between validation evaluations (and at the end).
        eval_episodes: episodes per validation level.
        checkpoint_every: iterations between checkpoints (and at the end).
        callback: called with every metrics record (the CLI's live display).
        options: ``learners.methods.MethodOptions`` of a registered method (network,
            population, ...; None: the method's defaults).
    """
    if isinstance(world, str):
        from autoworld.envs.catalogue import load_world

        world = load_world(world)
    _check_family(method, world)
    if method != "ppo":
        # without num_envs, the bench's rule: 256 envs, fewer when one rollout of 32 steps per
        # env would not fit the budget (a tiny one would not hold one generation of 256 envs)
        from autoworld.leaderboard.bench import budget_num_envs

        return _run_registered(method, world, steps, budget_num_envs(steps, num_envs),
                               seed, device, run_dir, resume, options, callback)
    if options is not None:
        raise TrainError("ppo takes its network and hyper-parameters as a PPOConfig (config=), "
                         "not MethodOptions")
    cfg = config or PPOConfig()
    if num_envs is not None:
        cfg = cfg.model_copy(update={"num_envs": int(num_envs)})
    cfg = PPOConfig.model_validate(cfg.model_dump())  # re-validate the override
    out = Path(run_dir) if run_dir is not None else None
    ckpt_dir = out / "checkpoint" if out is not None else None
    initial_score: float | None = None  # the untrained policy's R / R_opt (the gain's baseline)
    state = None
    if resume and ckpt_dir is not None and (ckpt_dir / "state.pt").is_file():
        state = load_state(ckpt_dir / "state.pt", device=torch.device(device))
        meta = state["meta"]
        initial_score = meta.get("initial_score")
        if meta["spec_hash"] != world.content_hash or meta["seed"] != seed:
            raise TrainError(f"{ckpt_dir} holds a run of another world or seed "
                             f"({meta['world']}, seed {meta['seed']}); use another --run-dir")
        if meta["config"] != cfg.model_dump(mode="json"):
            raise TrainError(f"{ckpt_dir} was trained with other hyper-parameters "
                             "(e.g. --num-envs); resume with the same ones")
        done = int(state["learner"]["global_step"])
        if done > steps:
            raise TrainError(f"{ckpt_dir} is already at {done:,} env-steps, past --steps "
                             f"{steps:,}; resume with --steps {done:,} or more (the run was "
                             f"started with --steps {meta['steps']:,})")
        # the rollout the run started with (fitted to its first budget), whatever --steps now
        run_cfg = PPOConfig.model_validate(meta.get("run_config", meta["config"]))
    else:
        run_cfg = cfg
    # cap: a budget under one rollout gets fewer envs (learner.config), and is never passed
    learner = PPO(world, run_cfg, total_steps=steps, device=device, seed=seed, cap=True)
    run_cfg = learner.config
    if state is not None:
        learner.load_state_dict(state["learner"])
        _truncate_metrics(out / "metrics.jsonl", learner.global_step)
    elif out is not None:
        # a run that starts from step 0 (fresh, or resumed before its first checkpoint) starts
        # clean: no old metrics lines (nor, so, TensorBoard events) to append to
        (out / "metrics.jsonl").unlink(missing_ok=True)

    write, close = _metrics_writer(out)

    def emit(rec: dict[str, Any]) -> None:
        write(rec)
        if callback is not None:
            callback(rec)

    def do_eval() -> EvalResult:
        res = evaluate(learner.policy, world, "validation", eval_episodes, learner.device,
                       seed=seed)
        emit({"kind": "eval", "step": learner.global_step, "iteration": learner.iteration,
              "mean_return": res.mean_return, "success": res.success,
              "normalized": res.normalized, "normalized_gain": res.normalized_gain})
        return res

    def save() -> str | None:
        if ckpt_dir is None:
            return None
        meta = {"world": world.name, "spec_hash": world.content_hash, "seed": seed,
                "method": method, "config": cfg.model_dump(mode="json"),
                "run_config": run_cfg.model_dump(mode="json"),
                "steps": steps, "initial_score": initial_score}
        save_state(ckpt_dir / "state.pt", {"meta": meta, "learner": learner.state_dict()})
        path = save_policy(learner.policy, ckpt_dir / "policy", spec_hash=world.content_hash,
                           method=method, world=world.name,
                           extra={"step": learner.global_step, "seed": seed,
                                  "train_config": run_cfg.model_dump(mode="json")})
        return str(path)

    start = time.perf_counter()
    last_eval: EvalResult | None = None
    checkpoint = None
    try:
        if learner.iteration == 0:  # step 0 of the learning curve, as the other methods score
            initial_score = do_eval().normalized
        while learner.iteration < learner.num_iterations:
            t0 = time.perf_counter()
            stats = learner.iterate()
            dt = time.perf_counter() - t0
            emit({"kind": "train", "step": learner.global_step, "iteration": learner.iteration,
                  "wall_time": time.perf_counter() - start,
                  "steps_per_second": learner.batch_size / max(dt, 1e-9), **stats})
            final = learner.iteration >= learner.num_iterations
            if final or learner.iteration % eval_every == 0:
                last_eval = do_eval()
            if final or learner.iteration % checkpoint_every == 0:
                checkpoint = save()
        if last_eval is None:  # resumed at the end: evaluate what the checkpoint holds
            last_eval = do_eval()
            checkpoint = save()
    finally:
        close()
    result = TrainResult(world=world.name, spec_hash=world.content_hash, method=method,
                         seed=seed, steps=learner.global_step,
                         wall_time=time.perf_counter() - start,
                         run_dir=str(out) if out is not None else None, checkpoint=checkpoint,
                         score=last_eval.normalized, normalized_gain=last_eval.normalized_gain,
                         mean_return=last_eval.mean_return, success=last_eval.success,
                         evaluation=last_eval,
                         extra={} if initial_score is None else {"initial_score": initial_score})
    if out is not None:
        atomic_write_text(out / "result.json", result.model_dump_json(indent=1) + "\n")
    return result


def _check_family(method: str, world) -> None:
    """A method trains the worlds of its family only (grid methods on grid worlds, ``arm-*``
    methods on arm worlds): a clear error instead of a crash deep inside the learner."""
    from autoworld.learners.methods import METHODS

    family = getattr(world, "family", "grid")
    wants = METHODS[method].family if method in METHODS else "grid"
    if family != wants:
        fitting = sorted(m for m, spec in METHODS.items() if spec.family == family)
        raise TrainError(f"{world.name} is {'an' if family == 'arm' else 'a'} {family} world "
                         f"and {method} trains {wants} worlds; use one of {', '.join(fitting)}")


def available_methods() -> list[str]:
    """``ppo`` plus the names of the method registry, when it exists."""
    try:
        from autoworld.learners.methods import METHODS
    except ImportError:
        return ["ppo"]
    return sorted({"ppo", *METHODS})


def _run_registered(method: str, world, steps: int, num_envs: int, seed: int, device,
                    run_dir: str | Path | None, resume: bool, options: Any = None,
                    callback: Callback | None = None) -> TrainResult:
    """Run a method of ``learners.methods.METHODS`` (their runs are not resumable);
    ``callback`` gets its progress records (``learners.methods.progress``)."""
    try:
        from autoworld.learners.methods import MethodError, get_method, progress
    except ImportError:
        entry = None
    else:
        try:
            entry = get_method(method)  # registered names and families such as llm:MODEL
        except MethodError:
            entry = None
    if entry is None:
        raise TrainError(f"unknown method {method!r}; use one of "
                         f"{', '.join(available_methods())}")
    if resume:
        raise TrainError(f"method {method!r} cannot resume; only ppo runs are resumable "
                         "(drop --resume to start over)")
    start = time.perf_counter()
    with progress(callback):
        res = entry.run(world, steps=steps, num_envs=num_envs, seed=seed, device=str(device),
                        run_dir=run_dir, options=options)
    spec_hash = world.content_hash() if callable(world.content_hash) else world.content_hash
    out = TrainResult(world=world.name, spec_hash=spec_hash, method=method, seed=seed,
                      steps=res.env_steps, wall_time=time.perf_counter() - start,
                      run_dir=str(run_dir) if run_dir is not None else None,
                      score=res.score, normalized_gain=res.normalized_gain,
                      mean_return=res.mean_return, success=res.success,
                      extra={"initial_score": res.initial_score, **res.extra,
                             **({} if options is None
                                else {"options": options.model_dump(mode="json")})})
    if run_dir is not None:
        atomic_write_text(Path(run_dir) / "result.json", out.model_dump_json(indent=1) + "\n")
    return out
