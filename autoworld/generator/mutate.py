"""Mutation of world specs for POET: a child world one or a few edits away from its parent.

Two kinds of edit, drawn at random:

- parametric: the size, ``max_steps``, a layout parameter (wall/lava density, braid, boxes), an
  object amount (coins, lava, ice, cracked floor, checkpoints) or a component's probability-like
  parameter (slip and wind probabilities, masking, noise, time decay), nudged by an amount that
  grows with ``strength`` and clamped to the schema's bounds;
- component-level: add, remove or swap one component in one factor (e.g. add wind, remove the
  random mask, swap the full view for an egocentric one, swap slippery for wind).

Every child is parsed by the schema (an edit it rejects is redrawn), differs from its parent
(another content hash) and keeps sizes in 5..11 so the exact oracle stays cheap. Children go
through the same validator as any proposal; mutation never executes anything.

``mutate_llm(spec, backend, seed)`` asks a generator backend instead for "a new, harder variant
of this world" (the parent spec goes into the prompt) and validates the child, with repair
rounds, exactly as ``Generator`` does.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

import numpy as np
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field

from autoworld.errors import SpecError
from autoworld.spec import WorldSpec, parse_spec

SIZE_RANGE = (5, 11)
STEPS_RANGE = (20, 200)
MAX_TRIES = 50
_NUMERIC_PARAMS = {
    "slippery": ("prob",), "wind": ("prob",), "random_mask": ("fraction",),
    "symbol_noise": ("prob",), "reach_goal": ("time_decay",), "inverted_goal": ("time_decay",),
    "step_penalty": ("cost",), "distance_shaping": ("scale",), "egocentric": ("size",),
}
_ADDABLE = {
    "transition": ({"kind": "slippery", "prob": 0.1}, {"kind": "wind", "direction": 0,
                                                       "prob": 0.15}),
    "observation": ({"kind": "random_mask", "fraction": 0.15},
                    {"kind": "symbol_noise", "prob": 0.1}, {"kind": "agent_features"}),
    "reward": ({"kind": "step_penalty", "cost": 0.01},),
}
_REMOVABLE = {
    "transition": {"slippery", "wind", "permuted_controls"},
    "observation": {"random_mask", "symbol_noise", "agent_features", "text", "line_of_sight",
                    "permuted_symbols"},
    "reward": {"step_penalty", "distance_shaping"},
}


def _bounds(model: type, field: str) -> tuple[float, float]:
    lo, hi = -np.inf, np.inf
    for m in model.model_fields[field].metadata:  # type: ignore[attr-defined]
        if isinstance(m, Ge):
            lo = float(m.ge)  # type: ignore[arg-type]
        elif isinstance(m, Gt):
            lo = float(m.gt) + 1e-3  # type: ignore[arg-type]
        elif isinstance(m, Le):
            hi = float(m.le)  # type: ignore[arg-type]
        elif isinstance(m, Lt):
            hi = float(m.lt) - 1e-3  # type: ignore[arg-type]
    return lo, hi


def _params_model(kind: str) -> type:
    from autoworld.envs.grid.components.registry import REGISTRY

    return REGISTRY[kind].Params


def _nudge(value: float, lo: float, hi: float, scale: float, rng: np.random.Generator,
           integer: bool = False) -> float:
    if integer:
        step = max(1, round(scale * 2))
        return float(np.clip(value + rng.choice([-step, step]), lo, hi))
    return round(float(np.clip(value + rng.normal(0.0, scale), lo, hi)), 3)


def _parametric(d: dict[str, Any], rng: np.random.Generator, strength: float) -> None:
    options = ["size", "max_steps", "layout", "objects", "component"]
    what = options[int(rng.integers(len(options)))]
    if what == "size":
        axis = ("height", "width")[int(rng.integers(2))]
        d[axis] = int(_nudge(d[axis], *SIZE_RANGE, strength, rng, integer=True))
    elif what == "max_steps":
        factor = float(np.exp(rng.normal(0.0, 0.3 * strength + 0.05)))
        d["max_steps"] = int(np.clip(round(d["max_steps"] * factor), *STEPS_RANGE))
    elif what == "layout":
        from autoworld.envs.grid import layouts_spec as ls

        models = {"open_room": ls.OpenRoomLayout, "rooms": ls.RoomsLayout, "maze": ls.MazeLayout,
                  "lava_field": ls.LavaFieldLayout, "sokoban": ls.SokobanLayout}
        model = models.get(d["layout"]["kind"])
        fields = [f for f in ("wall_density", "braid", "lava_density", "boxes")
                  if model is not None and f in model.model_fields]
        if fields:
            f = fields[int(rng.integers(len(fields)))]
            value = d["layout"].get(f, model.model_fields[f].default)  # type: ignore[union-attr]
            lo, hi = _bounds(model, f)  # type: ignore[arg-type]
            d["layout"][f] = _nudge(value, lo, min(hi, 2.0 if f == "boxes" else hi),
                                    0.1 * strength, rng, integer=f == "boxes")
            if f == "boxes":
                d["layout"][f] = int(d["layout"][f])
    elif what == "objects":
        from autoworld.envs.grid.layouts_spec import Objects

        obj = d.setdefault("objects", {})
        present = [f for f in ("coins", "lava", "ice", "cracked", "checkpoints") if obj.get(f)]
        if present:
            f = present[int(rng.integers(len(present)))]
            lo, hi = _bounds(Objects, f)
            integer = f in ("coins", "checkpoints")
            lo = max(lo, 1.0) if integer else max(lo, 0.02)
            hi = min(hi, 4.0) if f == "coins" else hi
            obj[f] = _nudge(obj[f], lo, hi, 0.05 * strength, rng, integer=integer)
            if integer:
                obj[f] = int(obj[f])
    else:
        cands = [(factor, i, c["kind"], p) for factor in ("transition", "observation", "reward")
                 for i, c in enumerate(d[factor]) for p in _NUMERIC_PARAMS.get(c["kind"], ())]
        if cands:
            factor, i, kind, p = cands[int(rng.integers(len(cands)))]
            model = _params_model(kind)
            lo, hi = _bounds(model, p)
            value = d[factor][i].get(p, model.model_fields[p].default)
            if p == "size":  # egocentric: odd sizes only
                d[factor][i][p] = int(np.clip(value + rng.choice([-2, 2]), 3, 9))
            else:
                d[factor][i][p] = _nudge(value, lo, hi, 0.1 * strength * max(1.0, hi - lo)
                                         if hi < np.inf else 0.1, rng)


def _structural(d: dict[str, Any], rng: np.random.Generator) -> None:
    factor = ("transition", "observation", "reward")[int(rng.integers(3))]
    comps: list[dict[str, Any]] = d[factor]
    kinds = {c["kind"] for c in comps}
    op = ("add", "remove", "swap")[int(rng.integers(3))]
    if op == "add":
        pool = [c for c in _ADDABLE[factor] if c["kind"] not in kinds]
        if factor == "reward" and "reach_goal" in kinds and "distance_shaping" not in kinds:
            pool.append({"kind": "distance_shaping", "scale": 0.5})
        if factor == "observation" and "egocentric" in kinds and "line_of_sight" not in kinds:
            pool.append({"kind": "line_of_sight"})
        if pool:
            new = copy.deepcopy(pool[int(rng.integers(len(pool)))])
            if new["kind"] == "wind":
                new["direction"] = int(rng.integers(4))
            comps.append(new)
    elif op == "remove":
        idx = [i for i, c in enumerate(comps) if c["kind"] in _REMOVABLE[factor]]
        if idx:
            comps.pop(idx[int(rng.integers(len(idx)))])
    else:
        swaps = {"slippery": {"kind": "wind", "direction": int(rng.integers(4)), "prob": 0.15},
                 "wind": {"kind": "slippery", "prob": 0.1},
                 "cardinal": {"kind": "turn_forward"}, "turn_forward": {"kind": "cardinal"},
                 "full_grid": {"kind": "egocentric", "size": 5},
                 "egocentric": {"kind": "full_grid"},
                 "random_mask": {"kind": "symbol_noise", "prob": 0.1},
                 "symbol_noise": {"kind": "random_mask", "fraction": 0.15}}
        idx = [i for i, c in enumerate(comps) if c["kind"] in swaps
               and swaps[c["kind"]]["kind"] not in kinds]
        if idx:
            i = idx[int(rng.integers(len(idx)))]
            comps[i] = swaps[comps[i]["kind"]]
            if comps[i]["kind"] == "full_grid":  # line_of_sight needs the egocentric view
                d[factor] = [c for c in comps if c["kind"] != "line_of_sight"]


def child_name(parent: str, child_hash: str) -> str:
    """``<parent stem>-m<6 hex>``: the parent's name without earlier mutation suffixes (only
    those: a name such as ``Lava-maze`` keeps its ``-maze``)."""
    stem = re.sub(r"(-m[0-9a-f]{6})+$", "", parent)[:48]
    return f"{stem}-m{child_hash[:6]}"


def mutate(spec: WorldSpec, rng: np.random.Generator | int, strength: float = 0.5) -> WorldSpec:
    """A child of ``spec``: ``1 + round(3 * strength)`` random edits (parametric with
    probability 0.6, else component-level), parsed by the schema and different from the parent.

    Example:
        >>> from autoworld.envs.catalogue import load_world
        >>> parent = load_world("Empty-6x6")
        >>> child = mutate(parent, 0)
        >>> child.content_hash != parent.content_hash
        True
    """
    if not 0.0 <= strength <= 1.0:
        raise SpecError(f"strength must lie in [0, 1] (got {strength})", field="strength")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(int(rng))
    base = spec.model_dump(mode="json")
    edits = 1 + round(3 * strength)
    for _ in range(MAX_TRIES):
        d = copy.deepcopy(base)
        for _ in range(edits):
            if gen.random() < 0.6:
                _parametric(d, gen, strength)
            else:
                _structural(d, gen)
        try:
            child = parse_spec(d)
        except SpecError:
            continue
        if child.content_hash == spec.content_hash:
            continue
        h = hashlib.sha256(child.content_hash.encode()).hexdigest()
        return parse_spec({**child.model_dump(mode="json"), "name": child_name(spec.name, h),
                           "description": f"A mutant of {spec.name}."})
    raise SpecError(f"{spec.name}: no valid child after {MAX_TRIES} tries; the world may have "
                    "nothing left to mutate", field="spec")


# ====================================================================== LLM mutation
class LLMMutation(BaseModel):
    """The outcome of one LLM mutation ("a new, harder variant of this world")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parent: str = Field(..., description="The parent world's name.")
    accepted: bool = Field(..., description="True when a child passed every validation stage.")
    child: dict[str, Any] | None = Field(None, description="The accepted child spec (JSON "
                                         "mapping).")
    stage: str | None = Field(None, description="Stage that rejected the last proposal.")
    reason: str = Field("", description="Why the last proposal was rejected.")
    rounds: int = Field(..., ge=1, description="Proposals made (1 + repair rounds used).")
    prompt_tokens: int = Field(0, ge=0, description="Tokens sent to the model, summed.")
    completion_tokens: int = Field(0, ge=0, description="Tokens produced, summed.")
    cost_usd: float = Field(0.0, ge=0.0, description="Cost summed over proposals.")


def mutate_llm(spec: WorldSpec, backend: Any, seed: int = 0, *, repair_rounds: int = 3,
               config: Any = None, novelty_index: Any = None) -> LLMMutation:
    """Ask a generator backend (openai, transformers, procedural) for "a new, harder variant" of
    ``spec``; the child goes through the same staged validator as any proposal, and rejections
    go back to the backend with the validator's message for up to ``repair_rounds`` rounds.

    A child identical to its parent (same content hash) is rejected at the novelty stage. The
    accepted child is renamed ``<parent>-m<hash>`` (``child_name``) whatever name the model
    chose, and described as a mutant of its parent. Nothing the backend returns is executed.

    Args:
        spec: the parent world.
        backend: anything with ``propose(theme, seed, feedback=, parent=)`` (``Backend``).
        seed: determinism handle; repair round r uses ``generate.round_seed(seed, r)``.
        repair_rounds: rounds after a rejection.
        config: the ``ValidationConfig`` (default: 3 validation levels, a short smoke test).
        novelty_index: known worlds for the novelty stage (default: the parent alone).
    """
    from autoworld.generator.generate import round_seed
    from autoworld.validation import NoveltyIndex, ValidationConfig, validate

    cfg = config or ValidationConfig(num_levels=3, num_envs=4, smoke_steps=32,
                                     random_episodes=32)
    index = novelty_index if novelty_index is not None else NoveltyIndex([spec])
    parent = spec.model_dump(mode="json")
    theme = spec.description or spec.name
    feedback: str | None = None
    tokens = [0, 0]
    cost = 0.0
    stage: str | None = None
    for r in range(repair_rounds + 1):
        proposal = backend.propose(theme, round_seed(seed, r), feedback=feedback, parent=parent)
        tokens[0] += proposal.prompt_tokens
        tokens[1] += proposal.completion_tokens
        cost += proposal.cost_usd
        data = proposal.data
        if isinstance(data, dict):  # lineage naming, before validation (the name is data)
            data = {**data, "name": child_name(spec.name, hashlib.sha256(
                json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()),
                "description": f"A mutant of {spec.name}."}
        report = validate(data, cfg, novelty_index=index)
        if report.ok:
            index.add(parse_spec(data))
            return LLMMutation(parent=spec.name, accepted=True, child=data, rounds=r + 1,
                               prompt_tokens=tokens[0], completion_tokens=tokens[1],
                               cost_usd=cost)
        failed = report.failed_stage
        stage = failed.name if failed is not None else None
        feedback = report.error if data is not None else (
            "schema: the reply is not one JSON object; reply with a single WorldSpec JSON object")
    return LLMMutation(parent=spec.name, accepted=False, stage=stage, reason=feedback or "",
                       rounds=repair_rounds + 1, prompt_tokens=tokens[0],
                       completion_tokens=tokens[1], cost_usd=cost)
