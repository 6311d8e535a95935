"""The staged validator of world specs.

``validate(spec)`` runs the stages in order and stops at the first failure (later stages are
reported as skipped):

1. ``schema``: the input (a mapping, a spec file, a catalogue name or a WorldSpec) is a valid
   WorldSpec.
2. ``build``: a batched ``GridEngine`` builds from it on a few envs.
3. ``smoke``: random batched rollouts do not crash, rewards are finite, the agent stays inside its
   world and every observation lies within the engine's declared observation spec.
4. ``levels``: the first K levels of the chosen split (exactly those the world's level bank
   serves) are generated, each proved solvable by the exact oracle (``oracle.solve``); catalogue
   worlds read the oracle values stored with their banks unless ``recompute`` is set.
5. ``reliability``: on every level the oracle's optimal return beats the random policy's return
   by at least ``margin``.

A spec is data: nothing in it is ever executed. Each stage's message names the field or level at
fault and what to change.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoworld.errors import AutoworldError

StageName = Literal["schema", "build", "smoke", "levels", "reliability"]
STAGES: tuple[StageName, ...] = ("schema", "build", "smoke", "levels", "reliability")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ValidationConfig(_Frozen):
    """Settings of one validation run."""

    num_levels: int = Field(5, ge=1, le=256, description="Levels generated and solved (K).")
    split: Literal["train", "validation", "test"] = Field(
        "validation", description="Which level split the K levels are drawn from."
    )
    num_envs: int = Field(8, ge=1, le=4096, description="Envs of the build and smoke stages.")
    smoke_steps: int = Field(128, ge=1, le=100_000, description="Random steps of the smoke stage.")
    seed: int = Field(0, ge=0, description="Root seed of the engine and the random actions.")
    device: str = Field("cpu", description="Torch device of the build and smoke stages.")
    margin: float = Field(
        0.05, ge=0.0, description="Least gap between the optimal and the random return per level."
    )
    random_episodes: int = Field(
        64, ge=1, le=100_000, description="Episodes of the random-policy return per level."
    )
    state_cap: int | None = Field(
        None, ge=1, description="Oracle state cap (None: the oracle's documented default)."
    )
    recompute: bool = Field(
        False, description="Re-solve levels whose oracle values the catalogue stores, and check "
        "that they agree."
    )


class StageResult(_Frozen):
    """The outcome of one stage."""

    name: StageName = Field(..., description="Stage name.")
    status: Literal["passed", "failed", "skipped"] = Field(..., description="Outcome.")
    passed: bool = Field(..., description="True when the stage passed.")
    seconds: float = Field(0.0, ge=0.0, description="Wall-clock time of the stage.")
    message: str = Field("", description="What was checked, or why it failed and the fix.")

    @model_validator(mode="after")
    def _consistent(self) -> StageResult:
        if self.passed != (self.status == "passed"):
            raise ValueError("passed must be true exactly when status is 'passed'")
        return self


class LevelCheck(_Frozen):
    """Oracle figures of one validated level."""

    index: int = Field(..., ge=0, description="Index of the level in its split.")
    seed: int = Field(..., description="Seed the level was drawn from.")
    optimal_return: float = Field(..., description="Oracle's optimal return (exact or bound).")
    exact: bool = Field(..., description="False when the optimal return is an upper bound only.")
    num_states: int = Field(..., ge=0, description="States the oracle expanded.")
    random_return: float | None = Field(None, description="Mean return of the random policy.")


class ValidationReport(_Frozen):
    """The per-stage report of one validation run."""

    world: str = Field("", description="World name ('' when the spec did not parse).")
    content_hash: str = Field("", description="The spec's content hash ('' when it did not parse).")
    ok: bool = Field(..., description="True when every stage passed.")
    stages: tuple[StageResult, ...] = Field(..., description="One result per stage, in order.")
    levels: tuple[LevelCheck, ...] = Field((), description="Oracle figures of the K levels.")
    config: ValidationConfig = Field(..., description="Settings of the run.")

    @property
    def failed_stage(self) -> StageResult | None:
        """The first failed stage, or None when the spec is valid."""
        return next((s for s in self.stages if s.status == "failed"), None)

    @property
    def error(self) -> str:
        """One line: the failed stage and its message ('' when valid)."""
        failed = self.failed_stage
        return f"{failed.name}: {failed.message}" if failed else ""

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str) -> ValidationReport:
        return cls.model_validate_json(text)


class StageFailure(Exception):
    """Raised inside a stage to fail it with a message (field/level and fix)."""


# ====================================================================== stages
def _schema(source: Any):
    from autoworld.envs.catalogue import load_world
    from autoworld.spec import WorldSpec, parse_spec

    if isinstance(source, WorldSpec):
        return source
    if isinstance(source, os.PathLike):
        return load_world(os.fspath(source))
    if isinstance(source, str):
        return load_world(source)
    return parse_spec(source)


def _small_bank(spec, count: int):
    """A few unchecked levels for the build and smoke stages (solvability is the levels stage's
    job, so an unsolvable world still gets through build and smoke). Draws that the layout
    generator rejects are redrawn, as the level banks do."""
    from autoworld.envs.grid.layouts import draw_candidate
    from autoworld.envs.grid.level import LevelBank
    from autoworld.envs.grid.levels import MAX_TRIES, level_seed
    from autoworld.errors import LevelError

    drawn, last_error = [], None
    for i in range(count):
        for attempt in range(MAX_TRIES):
            try:
                drawn.append(draw_candidate(spec, level_seed(spec, "train", i, attempt)))
                break
            except LevelError as exc:
                last_error = exc
    if not drawn:
        raise StageFailure(f"layout: the {spec.layout.kind!r} generator drew no level "
                           f"({last_error})")
    return LevelBank.from_levels(drawn)


def _build(spec, cfg: ValidationConfig):
    from autoworld.envs.grid.engine import GridEngine

    bank = _small_bank(spec, min(4, cfg.num_envs))
    return GridEngine(spec, num_envs=cfg.num_envs, device=cfg.device, seed=cfg.seed,
                      banks=[bank])


def _check_obs(obs: dict[str, torch.Tensor], declared: dict, batch: int, when: str) -> None:
    for key, (shape, dtype, low, high) in declared.items():
        if key not in obs:
            raise StageFailure(f"{when}: observation key {key!r} is declared but missing; the "
                               "observation components disagree with the engine's spec")
        x = obs[key]
        if tuple(x.shape) != (batch, *shape) or x.dtype != dtype:
            raise StageFailure(
                f"{when}: observation {key!r} is {tuple(x.shape)} {x.dtype}, declared "
                f"{(batch, *shape)} {dtype}; check the observation components' parameters"
            )
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise StageFailure(f"{when}: observation {key!r} has non-finite values; check the "
                               "observation components' parameters")
        if x.numel() and (float(x.min()) < low or float(x.max()) > high):
            raise StageFailure(
                f"{when}: observation {key!r} leaves its declared range [{low}, {high}] "
                f"(min {float(x.min())}, max {float(x.max())})"
            )
    extra = sorted(set(obs) - set(declared))
    if extra:
        raise StageFailure(f"{when}: observation keys {extra} are not declared by the engine")


def _smoke(engine, cfg: ValidationConfig) -> str:
    from autoworld.envs.grid.engine import NUM_ACTIONS

    B = engine.num_envs
    declared = engine.observation_spec()
    _check_obs(engine.reset(), declared, B, "reset")
    gen = torch.Generator().manual_seed(cfg.seed)
    episodes = 0
    for t in range(cfg.smoke_steps):
        actions = torch.randint(0, NUM_ACTIONS, (B,), generator=gen).to(engine.device)
        obs, reward, terminated, truncated, info = engine.step(actions)
        when = f"step {t}"
        if reward.shape != (B,) or not bool(torch.isfinite(reward).all()):
            raise StageFailure(f"{when}: rewards are not {B} finite numbers; check the reward "
                               "components' parameters")
        if terminated.dtype != torch.bool or truncated.dtype != torch.bool:
            raise StageFailure(f"{when}: terminated/truncated are not boolean tensors")
        s = engine.state
        row, col = s.pos // engine.W, s.pos % engine.W
        inside = (s.pos < engine.H * engine.W) & (row < engine.height) & (col < engine.width)
        if not bool(inside.all()):
            raise StageFailure(f"{when}: the agent left its world; check the transition "
                               "components (wrap_edges needs layout.border false)")
        if not bool(((s.dir >= 0) & (s.dir < 4)).all()):
            raise StageFailure(f"{when}: the agent's direction left 0..3")
        _check_obs(obs, declared, B, when)
        if "final_obs" in info:
            done = terminated | truncated
            if bool(done.any()):
                _check_obs(info["final_obs"], declared, B, f"{when} (final observation)")
        episodes += int((terminated | truncated).sum())
    return (f"{B} envs x {cfg.smoke_steps} random steps: finite rewards, agent in bounds, "
            f"observations within spec ({episodes} episodes ended)")


def _failing_level(spec, cfg: ValidationConfig) -> str:
    """Name the first level of the split that cannot be generated (only called on failure)."""
    from autoworld.envs.grid import levels as level_gen

    for i in range(cfg.num_levels):
        try:
            level_gen.generate_level(spec, cfg.split, i)
        except AutoworldError:
            return f"level {i} of {cfg.split!r}"
    return f"levels of {cfg.split!r}"


def _levels(spec, cfg: ValidationConfig) -> tuple[str, list[LevelCheck], Any]:
    """The K levels of the split (exactly the levels the world's bank serves), each checked
    solvable by the exact oracle while the bank is drawn (``levels.generate_level``)."""
    from autoworld.envs.grid import levels as level_gen
    from autoworld.envs.grid import oracle

    try:
        bank = level_gen.bank(spec, cfg.split, size=cfg.num_levels)
    except AutoworldError as exc:
        raise StageFailure(f"{_failing_level(spec, cfg)}: {exc}") from None
    info = bank.info
    kwargs = {} if cfg.state_cap is None else {"state_cap": cfg.state_cap}
    checks: list[LevelCheck] = []
    for i in range(len(bank)):
        stored = "optimal_return" in info and not cfg.recompute
        if stored:
            opt, exact, states = (float(info["optimal_return"][i]),
                                  bool(info["optimal_exact"][i]), int(info["num_states"][i]))
        else:
            res = oracle.solve(spec, bank.level(i), plan=False, **kwargs)
            opt, exact, states = res.optimal_return, res.exact, res.num_states
            if exact and not (opt > 0 or res.positive_reachable):
                raise StageFailure(
                    f"level {i} of {cfg.split!r} (seed {int(bank.seeds[i])}) is unsolvable: the "
                    "oracle finds no positive return; make the reward's objects reachable "
                    "(layout, objects, max_steps)"
                )
            if "optimal_return" in info and abs(opt - float(info["optimal_return"][i])) > 1e-4:
                raise StageFailure(
                    f"level {i} of {cfg.split!r}: stored optimal return "
                    f"{float(info['optimal_return'][i]):.4f} != recomputed {opt:.4f}; rebuild "
                    "the catalogue levels (python -m autoworld.envs.grid.levels "
                    "--rebuild-catalogue)"
                )
        if not math.isfinite(opt):
            raise StageFailure(f"level {i} of {cfg.split!r}: the oracle's return is {opt}")
        rnd = info.get("random_return")
        checks.append(LevelCheck(
            index=i, seed=int(bank.seeds[i]), optimal_return=float(opt), exact=bool(exact),
            num_states=int(states),
            random_return=None if rnd is None or cfg.recompute else float(rnd[i]),
        ))
    bounds = sum(not c.exact for c in checks)
    note = f"; {bounds} with an upper bound only (state space above the cap)" if bounds else ""
    opt_text = ", ".join(f"{c.optimal_return:.3f}" for c in checks)
    source = "stored catalogue oracle" if info.get("source") == "catalogue" and not \
        cfg.recompute else "exact oracle"
    return (f"{len(checks)} levels solvable ({source}), optimal returns [{opt_text}]{note}",
            checks, bank)


def _reliability(spec, cfg: ValidationConfig, checks: list[LevelCheck], bank
                 ) -> tuple[str, list[LevelCheck]]:
    from autoworld.envs.grid import oracle

    out: list[LevelCheck] = []
    worst = math.inf
    for c in checks:
        rr = c.random_return
        if rr is None:
            rr = float(oracle.random_return(spec, bank.level(c.index),
                                            episodes=cfg.random_episodes, seed=cfg.seed,
                                            device=cfg.device))
        out.append(c.model_copy(update={"random_return": rr}))
        gap = c.optimal_return - rr
        worst = min(worst, gap)
        if not gap >= cfg.margin:
            raise _ReliabilityFailure(
                f"level {c.index} (seed {c.seed}): the random policy's return {rr:.3f} is "
                f"within {cfg.margin} of the optimal {c.optimal_return:.3f}; make success depend "
                "on behaviour (farther goal, more obstacles, a time_decay or step penalty)",
                out,
            )
    bounds = sum(not c.exact for c in out)
    note = f" ({bounds} against an upper bound)" if bounds else ""
    return f"optimal beats random by >= {worst:.3f} on all {len(out)} levels{note}", out


class _ReliabilityFailure(StageFailure):
    def __init__(self, message: str, checks: list[LevelCheck]) -> None:
        super().__init__(message)
        self.checks = checks


# ====================================================================== driver
def validate(source: Any, config: ValidationConfig | None = None, **overrides: Any
             ) -> ValidationReport:
    """Validate a spec (mapping, spec file path, catalogue name or WorldSpec) stage by stage.

    Keyword overrides set fields of ``config`` (e.g. ``num_levels=2``).

    Example:
        >>> report = validate("DoorKey-8x8", num_levels=2)
        >>> report.ok, [s.status for s in report.stages][:2]
        (True, ['passed', 'passed'])
    """
    cfg = (config or ValidationConfig()).model_copy(update=overrides)
    cfg = ValidationConfig.model_validate(cfg.model_dump())
    results: list[StageResult] = []
    level_checks: list[LevelCheck] = []
    spec = engine = bank = None
    world = content_hash = ""

    def run_stage(name: StageName, fn: Callable[[], str]) -> bool:
        start = time.perf_counter()
        try:
            message, status = fn(), "passed"
        except StageFailure as exc:
            message, status = str(exc), "failed"
        except AutoworldError as exc:
            message, status = str(exc), "failed"
        except Exception as exc:  # a crash of the engine on this spec is a validation failure
            message, status = f"{type(exc).__name__}: {exc}", "failed"
        results.append(StageResult(name=name, status=status, passed=status == "passed",
                                   seconds=round(time.perf_counter() - start, 4),
                                   message=message))
        return status == "passed"

    def schema() -> str:
        nonlocal spec, world, content_hash
        spec = _schema(source)
        world, content_hash = spec.name, spec.content_hash
        return f"valid WorldSpec {spec.name!r} ({spec.content_hash})"

    def build() -> str:
        nonlocal engine
        engine = _build(spec, cfg)
        return f"GridEngine built: {cfg.num_envs} envs on {cfg.device}, image {engine.image_shape}"

    def smoke() -> str:
        return _smoke(engine, cfg)

    def levels_stage() -> str:
        nonlocal level_checks, bank
        message, level_checks, bank = _levels(spec, cfg)
        return message

    def reliability() -> str:
        nonlocal level_checks
        try:
            message, level_checks = _reliability(spec, cfg, level_checks, bank)
        except _ReliabilityFailure as exc:
            done = {c.index: c for c in exc.checks}
            level_checks = [done.get(c.index, c) for c in level_checks]
            raise
        return message

    stages: dict[StageName, Callable[[], str]] = {
        "schema": schema, "build": build, "smoke": smoke, "levels": levels_stage,
        "reliability": reliability,
    }
    failed = False
    for name in STAGES:
        if failed:
            results.append(StageResult(name=name, status="skipped", passed=False,
                                       message="skipped: an earlier stage failed"))
            continue
        failed = not run_stage(name, stages[name])
    return ValidationReport(world=world, content_hash=content_hash, ok=not failed,
                            stages=tuple(results), levels=tuple(level_checks), config=cfg)
