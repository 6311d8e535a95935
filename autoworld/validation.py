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
   by at least ``margin``; with ``learning_check`` a short learning run (PPO by default) must
   also beat the random policy on the validation levels.
6. ``novelty`` (only with ``novelty=True`` or a ``NoveltyIndex``): the spec's canonical content
   hash is not already in the catalogue or the current run, and its distance to the nearest
   known world (``spec_distance``) is at least ``min_distance``.

``extra_splits`` adds more (split, K) pairs to the levels and reliability stages (a generated
world's 10 test and 5 validation levels are checked in one run).

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

StageName = Literal["schema", "build", "smoke", "levels", "reliability", "novelty"]
STAGES: tuple[StageName, ...] = ("schema", "build", "smoke", "levels", "reliability")
"""The stages every run has; ``novelty`` follows them when it is enabled."""
ALL_STAGES: tuple[StageName, ...] = (*STAGES, "novelty")
SplitName = Literal["train", "validation", "test"]


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
    state_budget: int | None = Field(
        None, ge=1, description="Most reachable states the exact oracle may enumerate over all "
        "of a world's levels together; a world above it fails the levels stage (None: no "
        "budget). Generation sets one, so that one huge world cannot stall a run."
    )
    recompute: bool = Field(
        False, description="Re-solve levels whose oracle values the catalogue stores, and check "
        "that they agree."
    )
    extra_splits: tuple[tuple[SplitName, int], ...] = Field(
        (), description="More (split, K) pairs checked by the levels and reliability stages."
    )
    novelty: bool = Field(
        False, description="Run the novelty stage (dedup against the catalogue and the run)."
    )
    min_distance: float = Field(
        0.0, ge=0.0, le=1.0, description="Least distance to the nearest known world (novelty)."
    )
    learning_check: bool = Field(
        False, description="Reliability also runs a short learning run that must beat the "
        "random policy on the validation levels."
    )
    learning_method: str = Field("ppo", description="Registered learning method of the "
                                 "learning check (see `autoworld methods`).")
    learning_steps: int = Field(30_000, ge=1, le=10_000_000,
                                description="Env-step budget of the learning check.")
    learning_margin: float = Field(
        0.0, ge=-1.0, le=1.0, description="The learned policy's normalized gain (R - R_rand) / "
        "(R_opt - R_rand) on the validation levels must exceed this."
    )

    @model_validator(mode="after")
    def _distinct_splits(self) -> ValidationConfig:
        names = [self.split, *(name for name, _ in self.extra_splits)]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"extra_splits: split {twice[0]!r} is named twice (the main split "
                             f"is {self.split!r}); give each split once, with its K")
        return self


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
    split: str = Field("", description="The level's split ('' for the run's main split).")
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
            index=i, split=cfg.split, seed=int(bank.seeds[i]), optimal_return=float(opt),
            exact=bool(exact), num_states=int(states),
            random_return=None if rnd is None or cfg.recompute else float(rnd[i]),
        ))
    bounds = sum(not c.exact for c in checks)
    # a value marked * is a certified upper bound (state space above the cap), not exact
    opt_text = ", ".join(f"{c.optimal_return:.3f}" + ("" if c.exact else "*") for c in checks)
    source = "stored catalogue oracle" if info.get("source") == "catalogue" and not \
        cfg.recompute else "oracle"
    if not bounds:
        what = f"optimal returns [{opt_text}] (exact)"
    elif bounds == len(checks):
        what = (f"optimal returns unknown: upper bounds [{opt_text}] (every state space is "
                "above the oracle's cap; the solvability check is structural)")
    else:
        what = (f"optimal returns [{opt_text}]; the {bounds} marked * are upper bounds (state "
                "space above the oracle's cap)")
    return f"{len(checks)} levels solvable ({source}), {what}", checks, bank


def _reliability(spec, cfg: ValidationConfig, checks: list[LevelCheck], bank
                 ) -> tuple[str, list[LevelCheck]]:
    from autoworld.envs.grid import scores

    out: list[LevelCheck] = []
    worst = math.inf
    missing = [c.index for c in checks if c.random_return is None]
    # one batched engine plays every level (identical to one level at a time)
    measured = dict(zip(missing, scores.random_returns(
        spec, [bank.level(i) for i in missing], episodes=cfg.random_episodes, seed=cfg.seed,
        device=cfg.device), strict=True))
    for c in checks:
        rr = c.random_return
        if rr is None:
            rr = float(measured[c.index])
        out.append(c.model_copy(update={"random_return": rr}))
        gap = c.optimal_return - rr
        worst = min(worst, gap)
        if not gap >= cfg.margin:
            raise _ReliabilityFailure(
                f"level {c.index} of {c.split!r} (seed {c.seed}): the random policy's return "
                f"{rr:.3f} is within {cfg.margin} of the optimal {c.optimal_return:.3f}; make "
                "success depend on behaviour (farther goal, more obstacles, a time_decay or "
                "step penalty)",
                out,
            )
    bounds = sum(not c.exact for c in out)
    note = f" ({bounds} against an upper bound)" if bounds else ""
    return f"optimal beats random by >= {worst:.3f} on all {len(out)} levels{note}", out


def _learning_check(spec, cfg: ValidationConfig) -> str:
    """A short learning run (``cfg.learning_method``) must beat the random policy: its
    normalized gain on the validation levels exceeds ``cfg.learning_margin``."""
    try:
        from autoworld.learners.methods import get_method
    except ImportError as exc:  # pragma: no cover - the learners ship with the package
        raise StageFailure(f"the learning check needs autoworld.learners ({exc})") from None
    method = get_method(cfg.learning_method)
    res = method.run(spec, steps=cfg.learning_steps, num_envs=16, seed=cfg.seed,
                     device=cfg.device)
    if not res.normalized_gain > cfg.learning_margin:
        raise StageFailure(
            f"learning check: {cfg.learning_method} for {res.env_steps} steps reached a "
            f"normalized gain of {res.normalized_gain:.3f} over random (needs > "
            f"{cfg.learning_margin}); make the reward reachable by behaviour a learner can find "
            "(denser rewards, a smaller world, more max_steps) or raise --learning-steps"
        )
    return (f"learning check: {cfg.learning_method} beat random after {res.env_steps} steps "
            f"(normalized gain {res.normalized_gain:.3f}, score {res.score:.3f})")


class _ReliabilityFailure(StageFailure):
    def __init__(self, message: str, checks: list[LevelCheck]) -> None:
        super().__init__(message)
        self.checks = checks


# ====================================================================== novelty
def _structure(spec) -> frozenset[str]:
    """Structural tokens of a world: its component kinds per factor, layout kind and objects."""
    tokens = {f"layout:{spec.layout.kind}"}
    for factor in ("transition", "observation", "reward"):
        tokens |= {f"{factor}:{c.kind}" for c in getattr(spec, factor)}
    for name, value in spec.objects.model_dump().items():
        if value and name != "goal":
            tokens.add(f"objects:{name}")
    return frozenset(tokens)


def _numbers(spec) -> list[float]:
    """Scale-free numeric profile: size, horizon and object densities, each in [0, 1]."""
    o = spec.objects
    return [spec.height / 32, spec.width / 32, spec.max_steps / 1000, o.coins / 20, o.lava / 0.3,
            o.ice / 0.6, o.cracked / 0.4, o.checkpoints / 3]


def spec_distance(a, b) -> float:
    """Distance in [0, 1] between two worlds: 0.8 x the Jaccard distance of their structure
    (component kinds per factor, layout kind, object kinds) + 0.2 x the mean absolute difference
    of their normalized numbers (size, max_steps, object densities). 0 for identical worlds.

    Example:
        >>> from autoworld.envs.catalogue import load_world
        >>> spec_distance(load_world("Empty-6x6"), load_world("Empty-6x6"))
        0.0
    """
    sa, sb = _structure(a), _structure(b)
    jaccard = 1.0 - len(sa & sb) / len(sa | sb)
    na, nb = _numbers(a), _numbers(b)
    numeric = sum(abs(x - y) for x, y in zip(na, nb, strict=True)) / len(na)
    return round(0.8 * jaccard + 0.2 * min(1.0, numeric), 6)


def world_key(spec: Any) -> str:
    """The key two specs of the same world share: ``world_key`` where the spec has one (grid
    worlds: the content hash blind to component order), else its content hash."""
    key = getattr(spec, "world_key", None) or spec.content_hash
    return key() if callable(key) else key  # the arm family's content_hash is a method


class NoveltyIndex:
    """The worlds a new one must differ from: world keys for exact dedup (name, description
    and the order of components excluded) and specs for the nearest-world distance."""

    def __init__(self, specs: Any = ()) -> None:
        self._by_key: dict[str, tuple[str, str]] = {}  # world key -> (name, content hash)
        self._specs: list[Any] = []
        for spec in specs:
            self.add(spec)

    @classmethod
    def from_catalogue(cls, generated: bool = True) -> NoveltyIndex:
        """An index of every catalogue world (the generated ones too unless ``generated`` is
        false)."""
        from autoworld.envs.catalogue import list_worlds, load_world

        return cls(load_world(name) for name in list_worlds(generated=generated))

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, spec: Any) -> bool:
        return world_key(spec) in self._by_key

    def add(self, spec: Any) -> None:
        """Remember ``spec`` (a world accepted in this run)."""
        key = world_key(spec)
        if key not in self._by_key:
            self._by_key[key] = (spec.name, spec.content_hash)
            self._specs.append(spec)

    def nearest(self, spec: Any) -> tuple[str, float]:
        """(name, distance) of the nearest known world; ('', 1.0) when the index is empty."""
        best = ("", 1.0)
        for other in self._specs:
            d = spec_distance(spec, other)
            if d < best[1]:
                best = (other.name, d)
        return best

    def check(self, spec: Any, min_distance: float = 0.0) -> str:
        """The novelty stage: raise StageFailure on a duplicate or a too-near world."""
        twin = self._by_key.get(world_key(spec))
        if twin is not None:
            name, digest = twin
            why = (f"same content hash {digest}" if digest == spec.content_hash else
                   "the same components, listed in another order")
            raise StageFailure(f"duplicate of {name!r} ({why}); change a component, the layout "
                               "or a parameter")
        name, dist = self.nearest(spec)
        if dist < min_distance:
            raise StageFailure(f"too close to {name!r} (distance {dist:.3f} < {min_distance}); "
                               "change a component or the layout")
        near = f"nearest {name!r} at distance {dist:.3f}" if name else "no known world"
        return f"a new world among {len(self)} known worlds; {near}"


# ====================================================================== driver
def validate(source: Any, config: ValidationConfig | None = None, *,
             novelty_index: NoveltyIndex | None = None, **overrides: Any) -> ValidationReport:
    """Validate a spec (mapping, spec file path, catalogue name or WorldSpec) stage by stage.

    Keyword overrides set fields of ``config`` (e.g. ``num_levels=2``). ``novelty_index`` (the
    known worlds; default the catalogue when ``novelty`` is set) enables the novelty stage; the
    caller adds accepted worlds to it.

    Example:
        >>> report = validate("DoorKey-8x8", num_levels=2)
        >>> report.ok, [s.status for s in report.stages][:2]
        (True, ['passed', 'passed'])
    """
    cfg = (config or ValidationConfig()).model_copy(update=overrides)
    cfg = ValidationConfig.model_validate(cfg.model_dump())
    results: list[StageResult] = []
    level_checks: list[LevelCheck] = []
    spec = engine = None
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

    banks: dict[str, Any] = {}

    def level_configs() -> list[ValidationConfig]:
        pairs = [(cfg.split, cfg.num_levels), *cfg.extra_splits]
        return [cfg.model_copy(update={"split": sp, "num_levels": k}) for sp, k in pairs]

    def levels_stage() -> str:
        nonlocal level_checks
        from autoworld.envs.grid import levels as level_gen

        messages = []
        # every split's levels in one batched oracle pass; on an error the split-by-split
        # pass below names the level at fault
        from autoworld.envs.grid.oracle_states import StateBudgetExceeded

        try:
            level_gen.prepare_banks(spec, {s.split: s.num_levels for s in level_configs()},
                                    state_budget=cfg.state_budget)
        except StateBudgetExceeded as exc:
            raise StageFailure(str(exc)) from None
        except AutoworldError:
            pass
        for sub in level_configs():
            message, checks, banks[sub.split] = _levels(spec, sub)
            level_checks = [*level_checks, *checks]
            messages.append(message if sub.split == cfg.split else f"{sub.split}: {message}")
        return "; ".join(messages)

    def reliability() -> str:
        nonlocal level_checks
        from autoworld.envs.grid import scores

        done: dict[tuple[str, int], LevelCheck] = {}
        messages = []
        missing = [c for c in level_checks if c.random_return is None]
        if missing:  # every split's levels played by one batched engine
            rr = scores.random_returns(spec, [banks[c.split].level(c.index) for c in missing],
                                       episodes=cfg.random_episodes, seed=cfg.seed,
                                       device=cfg.device)
            filled = {(c.split, c.index): c.model_copy(update={"random_return": float(r)})
                      for c, r in zip(missing, rr, strict=True)}
            level_checks = [filled.get((c.split, c.index), c) for c in level_checks]
        try:
            for sub in level_configs():
                mine = [c for c in level_checks if c.split == sub.split]
                message, out = _reliability(spec, sub, mine, banks[sub.split])
                done.update({(c.split, c.index): c for c in out})
                messages.append(message if sub.split == cfg.split else f"{sub.split}: {message}")
        except _ReliabilityFailure as exc:
            done.update({(c.split, c.index): c for c in exc.checks})
            raise
        finally:
            level_checks = [done.get((c.split, c.index), c) for c in level_checks]
        if cfg.learning_check:
            messages.append(_learning_check(spec, cfg))
        return "; ".join(messages)

    def novelty_stage() -> str:
        index = novelty_index if novelty_index is not None else NoveltyIndex.from_catalogue()
        return index.check(spec, cfg.min_distance)

    stages: dict[StageName, Callable[[], str]] = {
        "schema": schema, "build": build, "smoke": smoke, "levels": levels_stage,
        "reliability": reliability, "novelty": novelty_stage,
    }
    names = ALL_STAGES if cfg.novelty or novelty_index is not None else STAGES
    failed = False
    for name in names:
        if failed:
            results.append(StageResult(name=name, status="skipped", passed=False,
                                       message="skipped: an earlier stage failed"))
            continue
        failed = not run_stage(name, stages[name])
    return ValidationReport(world=world, content_hash=content_hash, ok=not failed,
                            stages=tuple(results), levels=tuple(level_checks), config=cfg)
