"""The procedural backend: offline, deterministic per (theme, seed), no model.

The theme's whole words are looked up in the lexicon (``lexicon.py``); each match fixes part of
one factor (a component, the layout, objects). The factors that the theme leaves open are drawn
independently from a factorized prior: the transition factor (movement scheme, a stochastic
component, a mechanic), the observation factor (view and extras) and the reward factor
(objective and extras); layout parameters, sizes and probabilities are sampled. A final
reconciliation adds what the chosen components need (ice cells for ``ice_sliding``, lava for
``hazard``, ...) so that the proposal is a consistent WorldSpec.

Sizes stay small (6..11, or 5 for coverage worlds) and ``max_steps`` modest so that every level
is solved by the exact oracle within its state cap. A proposal whose state space could exceed
``LEVEL_STATE_BOUND`` states per level (``oracle.state_count_bound``: an upper bound from the
spec alone) is sized down before it is proposed (fewer coins, less cracked floor, a smaller
grid), so that generation does not spend minutes enumerating a world the state budget would
reject, or nearly so. The theme is untrusted: only lexicon words
influence the spec, the name is a slug of letters plus a short hash, the description is capped,
and nothing is ever executed.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

import numpy as np

from autoworld.generator.base import Proposal
from autoworld.generator.lexicon import theme_features, theme_words

OBJECTIVES = ("boxes", "checkpoints", "explore", "coins", "inverted")  # by priority
# Most states one level of a proposal may have by ``oracle.state_count_bound``. Its 15 levels
# then stay below 750,000 states, under the generator's default state budget of 1,000,000, and
# every world of the generated catalogue is below it (the largest bound there is 42,624).
LEVEL_STATE_BOUND = 50_000
MECHANICS = ("ice", "teleport", "mirror", "crumble", "torus")
DESCRIPTION_CHARS = 300
_PRINTABLE = re.compile(r"[^ -~]")


def _rng(*parts: Any) -> np.random.Generator:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _choice(rng: np.random.Generator, options: dict[str, float]) -> str:
    keys = list(options)
    p = np.array([options[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _r(x: float) -> float:
    return round(float(x), 2)


def world_name(theme: str, seed: int, height: int, width: int) -> str:
    """A safe world name: up to three theme words as a CamelCase slug, a short hash of
    (theme, seed) and the size, e.g. ``FoggyIceMaze-3fa2c1-9x9``."""
    words = [w for w in theme_words(theme) if len(w) > 2][:3]
    slug = "".join(w[:10].capitalize() for w in words) or "World"
    short = hashlib.sha256(f"{theme}\x00{seed}".encode()).hexdigest()[:6]
    return f"{slug}-{short}-{height}x{width}"


def safe_description(theme: str) -> str:
    """The theme as printable ASCII on one line, capped (it is shown to people, never run)."""
    text = " ".join(_PRINTABLE.sub(" ", str(theme)[:2000]).split())
    text = text[:DESCRIPTION_CHARS - 40]
    return f"Procedural world for the theme: {text}" if text else "Procedural world."


def _view(rng: np.random.Generator, size_choices: tuple[int, ...] = (5, 7)) -> dict:
    return {"kind": "egocentric", "size": int(rng.choice(size_choices))}


def sample_spec(theme: str, seed: int, simplify: int = 0) -> dict[str, Any]:
    """The spec mapping for (theme, seed). ``simplify`` > 0 (repair rounds) draws smaller,
    tamer worlds from the same features."""
    feats = set(theme_features(theme))
    # Independent streams per factor: fixing one factor never shifts another's draws.
    r_rew, r_lay, r_tr, r_obs, r_size = (_rng("factor", k, theme, int(seed), int(simplify))
                                         for k in ("reward", "layout", "transition",
                                                   "observation", "size"))

    # ------------------------------------------------------------------ reward: objective
    asked = [o for o in OBJECTIVES if o in feats]
    if asked:
        objective = asked[0]
    else:
        objective = _choice(r_rew, {"goal": 0.55, "coins": 0.18, "checkpoints": 0.1,
                                    "inverted": 0.09,
                                    "boxes": 0.0 if "torus" in feats else 0.08})
    if "torus" in feats and objective in ("boxes", "explore"):
        feats.discard("torus")

    # ------------------------------------------------------------------ layout
    layout: dict[str, Any]
    if objective == "boxes":
        layout = {"kind": "sokoban", "boxes": int(r_lay.integers(1, 3)),
                  "wall_density": _r(r_lay.choice([0.0, 0.05]))}
    elif objective == "explore":
        layout = {"kind": "open_room"}
    elif "torus" in feats:
        layout = {"kind": "open_room", "border": False}
    elif "doors" in feats:
        if objective == "goal" and r_lay.random() < 0.5:
            layout = {"kind": "doorkey"}
        else:
            two = [(2, 1), (1, 2), (2, 2)][int(r_lay.integers(0, 3))]
            layout = {"kind": "rooms", "rooms_x": two[0], "rooms_y": two[1], "locked_doors": 1}
    elif "maze" in feats:
        layout = {"kind": "maze", "braid": _r(r_lay.uniform(0.0, 0.5))}
    elif "rooms" in feats:
        layout = {"kind": "rooms", "rooms_x": int(r_lay.integers(1, 3)),
                  "rooms_y": int(r_lay.integers(1, 3)), "locked_doors": 0}
    elif "lava" in feats and "open" not in feats and r_lay.random() < 0.6:
        layout = {"kind": "lava_field", "lava_density": _r(r_lay.uniform(0.08, 0.2))}
    elif "open" in feats:
        layout = {"kind": "open_room", "wall_density": _r(r_lay.uniform(0.0, 0.12))}
    else:
        kind = _choice(r_lay, {"open_room": 0.35, "maze": 0.25, "rooms": 0.2,
                               "lava_field": 0.2 if objective != "inverted" else 0.0})
        layout = {"open_room": {"kind": "open_room",
                                "wall_density": _r(r_lay.uniform(0.0, 0.12))},
                  "maze": {"kind": "maze", "braid": _r(r_lay.uniform(0.0, 0.5))},
                  "rooms": {"kind": "rooms", "rooms_x": int(r_lay.integers(1, 3)),
                            "rooms_y": int(r_lay.integers(1, 3)), "locked_doors": 0},
                  "lava_field": {"kind": "lava_field",
                                 "lava_density": _r(r_lay.uniform(0.08, 0.2))}}[kind]
    if objective == "inverted" and layout["kind"] == "lava_field":
        layout = {"kind": "open_room"}

    # ------------------------------------------------------------------ transition
    movement = "turn_forward" if "turn" in feats or (
        objective not in ("boxes", "explore") and r_tr.random() < 0.25 and not simplify
    ) else "cardinal"
    noise = [s for s in ("slippery", "wind") if s in feats]
    if not noise and not simplify and objective != "boxes":
        pick = _choice(r_tr, {"none": 0.6, "slippery": 0.2, "wind": 0.2})
        noise = [] if pick == "none" else [pick]
    mechanics = [m for m in MECHANICS if m in feats]
    if not mechanics and not simplify and objective not in ("boxes", "explore"):
        pick = _choice(r_tr, {"none": 0.55, "ice": 0.12, "teleport": 0.12, "mirror": 0.11,
                              "crumble": 0.1})
        mechanics = [] if pick == "none" else [pick]
    if objective in ("boxes", "explore"):
        mechanics = [m for m in mechanics if m == "mirror"]
    transition: list[dict[str, Any]] = [{"kind": movement}]
    objects: dict[str, Any] = {}
    if "slippery" in noise:
        transition.append({"kind": "slippery", "prob": _r(r_tr.uniform(0.05, 0.2))})
    if "wind" in noise:
        transition.append({"kind": "wind", "direction": int(r_tr.integers(0, 4)),
                           "prob": _r(r_tr.uniform(0.1, 0.3))})
    if layout["kind"] in ("doorkey",) or layout.get("locked_doors"):
        transition.append({"kind": "keys_doors"})
    if objective == "boxes":
        transition.append({"kind": "pushable_boxes"})
    if "ice" in mechanics:
        transition.append({"kind": "ice_sliding"})
        objects["ice"] = _r(r_tr.uniform(0.2, 0.45))
    if "teleport" in mechanics:
        transition.append({"kind": "teleporters"})
        objects["teleporters"] = True
    if "mirror" in mechanics:
        moves = [0, 1, 2, 3] if movement == "cardinal" else [0, 1, 2]
        perm = list(range(7))
        shuffled = [int(x) for x in r_tr.permutation(moves)]
        if shuffled == moves:
            shuffled = shuffled[1:] + shuffled[:1]
        for a, b in zip(moves, shuffled, strict=True):
            perm[a] = b
        transition.append({"kind": "permuted_controls", "permutation": perm})
    if "crumble" in mechanics:
        transition.append({"kind": "collapsing_floor",
                           "becomes": "lava" if r_tr.random() < 0.5 else "wall"})
        objects["cracked"] = _r(r_tr.uniform(0.05, 0.15))
    if "torus" in mechanics and layout == {"kind": "open_room", "border": False}:
        transition.append({"kind": "wrap_edges"})

    # ------------------------------------------------------------------ size and max_steps
    if objective == "explore":
        height = width = 5
    else:
        hi = 8 if (objective in ("boxes", "coins") or "crumble" in mechanics
                   or movement == "turn_forward" or simplify) else 11
        lo = 7 if layout["kind"] in ("rooms", "doorkey", "maze") else 6
        if layout["kind"] == "rooms" and (layout["rooms_x"] > 1 or layout["rooms_y"] > 1):
            lo = 8
            hi = max(hi, 9)
        if objective == "boxes":
            lo, hi = 6, 7
        height = int(r_size.integers(lo, hi + 1))
        width = height if r_size.random() < 0.6 else int(r_size.integers(lo, hi + 1))
    per_cell = 2.0 if movement == "cardinal" else 4.0
    max_steps = int(min(120, max(30, per_cell * (height + width))))

    # ------------------------------------------------------------------ reward
    reward: list[dict[str, Any]] = []
    decay = _r(r_rew.uniform(0.5, 0.9))
    if objective == "goal":
        reward.append({"kind": "reach_goal", "reward": 1.0, "time_decay": decay})
    elif objective == "coins":
        objects["goal"] = False
        objects["coins"] = int(r_rew.integers(2, 4))
        reward.append({"kind": "collect_items", "reward": 1.0, "terminate_when_all": True})
    elif objective == "checkpoints":
        objects["goal"] = False
        objects["checkpoints"] = int(r_rew.integers(2, 4))
        reward.append({"kind": "ordered_subgoals", "reward": 1.0})
    elif objective == "explore":
        objects["goal"] = False
        reward.append({"kind": "coverage", "reward": 0.1, "terminate_when_all": True})
    elif objective == "inverted":
        objects["lava"] = max(float(objects.get("lava", 0.0)), _r(r_rew.uniform(0.04, 0.1)))
        reward.append({"kind": "inverted_goal", "reward": 1.0, "time_decay": decay})
    elif objective == "boxes":
        objects["goal"] = False
        reward.append({"kind": "box_on_target", "reward": 1.0})
    if layout["kind"] == "doorkey":
        objects["goal"] = False
    if "lava" in feats and layout["kind"] != "lava_field" and objective != "boxes":
        objects["lava"] = max(float(objects.get("lava", 0.0)), _r(r_rew.uniform(0.04, 0.1)))
    lava = layout["kind"] == "lava_field" or objects.get("lava", 0) > 0 or any(
        c.get("becomes") == "lava" for c in transition)
    if lava and objective != "inverted":
        reward.append({"kind": "hazard", "penalty": 1.0, "terminate": True})
    if "hurry" in feats or objective in ("boxes", "coins") or (
            not simplify and r_rew.random() < 0.15):
        reward.append({"kind": "step_penalty", "cost": 0.01})
    if objective == "goal" and ("guided" in feats or r_rew.random() < 0.1):
        reward.append({"kind": "distance_shaping", "scale": _r(r_rew.uniform(0.2, 1.0))})

    # ------------------------------------------------------------------ observation
    observation: list[dict[str, Any]]
    if "dark" in feats:
        observation = [_view(r_obs), {"kind": "line_of_sight"}]
    elif "fog" in feats:
        observation = [_view(r_obs, (3, 5))]
    else:
        view = _choice(r_obs, {"full": 0.5, "ego": 0.35, "ego_los": 0.15})
        observation = [{"kind": "full_grid"}] if view == "full" else [_view(r_obs)]
        if view == "ego_los":
            observation.append({"kind": "line_of_sight"})
    extras = [e for e in ("flicker", "noise", "text") if e in feats]
    if not extras and not simplify:
        pick = _choice(r_obs, {"none": 0.6, "flicker": 0.12, "noise": 0.12, "features": 0.16})
        extras = [] if pick == "none" else [pick]
    if "flicker" in extras:
        observation.append({"kind": "random_mask", "fraction": _r(r_obs.uniform(0.1, 0.3))})
    if "noise" in extras:
        observation.append({"kind": "symbol_noise", "prob": _r(r_obs.uniform(0.05, 0.15))})
    if "text" in extras:
        observation.append({"kind": "text"})
    if "features" in extras:
        observation.append({"kind": "agent_features"})
    if "deceptive" in feats or (objective == "inverted" and r_obs.random() < 0.5) or (
            lava and not simplify and r_obs.random() < 0.08):
        observation.append({"kind": "permuted_symbols", "swaps": [["lava", "goal"]]})

    data = {
        "name": world_name(theme, seed, height, width),
        "description": safe_description(theme),
        "height": height,
        "width": width,
        "max_steps": max_steps,
        "layout": layout,
        "objects": objects,
        "transition": transition,
        "observation": observation,
        "reward": reward,
    }
    return _fit_state_bound(data, theme, seed, lo if objective != "explore" else 5, per_cell)


def _fit_state_bound(data: dict[str, Any], theme: str, seed: int, lo: int,
                     per_cell: float) -> dict[str, Any]:
    """``data`` sized down until ``oracle.state_count_bound`` is at most ``LEVEL_STATE_BOUND``
    (unchanged when it already is): one coin fewer (down to one), then half the cracked floor,
    then one row or column fewer (down to ``lo``), in that order, as long as any applies."""
    from autoworld.envs.grid.oracle_bounds import state_count_bound
    from autoworld.spec import parse_spec

    if state_count_bound(parse_spec(data)) <= LEVEL_STATE_BOUND:
        return data
    data = json.loads(json.dumps(data))  # a private copy
    for _ in range(64):
        if state_count_bound(parse_spec(data)) <= LEVEL_STATE_BOUND:
            break
        obj = data["objects"]
        if obj.get("coins", 0) > 1:
            obj["coins"] -= 1
        elif obj.get("cracked", 0) > 0.02:
            obj["cracked"] = _r(obj["cracked"] / 2)
        elif max(data["height"], data["width"]) > lo:
            side = "height" if data["height"] >= data["width"] else "width"
            data[side] -= 1
            data["max_steps"] = int(min(120, max(30, per_cell * (data["height"]
                                                                 + data["width"]))))
            data["name"] = world_name(theme, seed, data["height"], data["width"])
        else:
            break
    return data


class ProceduralBackend:
    """The embedded default backend: lexicon + factorized prior, offline and deterministic.

    Example:
        >>> a = ProceduralBackend().propose("an icy maze", seed=1)
        >>> a.data == ProceduralBackend().propose("an icy maze", seed=1).data
        True
    """

    name = "procedural"

    def propose(self, theme: str, seed: int, feedback: str | None = None,
                parent: dict[str, Any] | None = None) -> Proposal:
        start = time.perf_counter()
        if parent is not None:
            from autoworld.generator.mutate import mutate
            from autoworld.spec import parse_spec

            child = mutate(parse_spec(parent), _rng("mutate", theme, int(seed), feedback or ""),
                           strength=0.5)
            data = child.model_dump(mode="json")
        else:
            # A repair round draws a smaller, tamer world (the generator varies the seed per
            # round); the feedback text itself is untrusted and never parsed.
            data = sample_spec(theme, seed, simplify=0 if feedback is None else 1)
        text = json.dumps(data, sort_keys=True)
        return Proposal(text=text, data=data, seconds=time.perf_counter() - start)
