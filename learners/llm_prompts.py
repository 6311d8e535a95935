"""What a language agent reads and how its reply becomes an action.

The text observation of each env, the system and user messages of a decision (the world, its
component docs, the map legend, the actions of its movement scheme, the step, a short history)
and ``parse_action``, which reads the action a free-text or JSON reply names.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import numpy as np
import torch

from autoworld.learners.llm_config import LLMAgentError

# (name, meaning) per movement scheme, in action order.
ACTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "turn_forward": (
        ("left", "turn 90 degrees to the left"),
        ("right", "turn 90 degrees to the right"),
        ("forward", "move one cell forward, in the direction the agent faces"),
        ("pickup", "pick up the object in the cell in front"),
        ("drop", "drop the carried object into the cell in front"),
        ("toggle", "interact with the cell in front (open a locked door while carrying a key)"),
        ("done", "do nothing"),
    ),
    "cardinal": (
        ("east", "face east (right on the map) and move one cell"),
        ("south", "face south (down on the map) and move one cell"),
        ("west", "face west (left on the map) and move one cell"),
        ("north", "face north (up on the map) and move one cell"),
        ("pickup", "pick up the object in the cell in front"),
        ("drop", "drop the carried object into the cell in front"),
        ("toggle", "interact with the cell in front (open a locked door while carrying a key)"),
    ),
}


# ====================================================================== text observations
def observation_texts(obs: dict[str, torch.Tensor], rows: np.ndarray | None = None) -> list[str]:
    """The text observation of envs ``rows`` (default all): the ``text`` output of the world
    when present, else the view ``image`` drawn with the ASCII level characters."""
    from autoworld.envs.grid.components.observation import image_to_text

    if "text" in obs:
        codes = obs["text"]
        sel = codes if rows is None else codes[torch.as_tensor(rows, dtype=torch.long)]
        arr = sel.cpu().numpy()  # (b, R, C) uint8 ASCII
        arr = np.where(arr == 0, ord(" "), arr).astype(np.uint8)
        return ["\n".join(bytes(r).decode("ascii") for r in env) for env in arr]
    if "image" in obs:
        img = obs["image"]
        sel = img if rows is None else img[torch.as_tensor(rows, dtype=torch.long)]
        return [image_to_text(env) for env in sel.cpu().numpy()]
    raise LLMAgentError(f"a language agent needs an 'image' or 'text' observation; this world "
                        f"gives {sorted(obs)}")


def _carrying(obs: dict[str, torch.Tensor], rows: np.ndarray) -> list[bool | None]:
    """Whether each env's agent carries something (from ``agent_features``), None if unknown."""
    feats = obs.get("features")
    if feats is None:
        return [None] * len(rows)
    return [bool(x > 0.5) for x in feats[torch.as_tensor(rows, dtype=torch.long), 6].cpu()]


# ====================================================================== prompts
def action_table(spec) -> tuple[tuple[str, str], ...]:
    """(name, meaning) of the 7 actions under ``spec``'s movement scheme."""
    return ACTIONS["turn_forward" if spec.component("turn_forward") is not None else "cardinal"]


def _legend() -> str:
    from autoworld.envs.grid.symbols import CHARS, Cell

    seen: dict[str, list[str]] = {}
    for cell, ch in CHARS.items():
        label = Cell(cell).name.lower().replace("_", " ")
        seen.setdefault(ch, []).append(label)
    return "\n".join(f"{ch!r}: {' / '.join(names)}" for ch, names in seen.items())


def system_prompt(spec, reply: Literal["json", "number"] = "json") -> str:
    """The system message: the world, its rules (component docs), legend, actions, reply form."""
    from autoworld.envs.grid.components.registry import REGISTRY

    rules = []
    for factor in (spec.transition, spec.observation, spec.reward):
        for comp in factor:
            cls = REGISTRY.get(comp.kind)
            doc = " ".join(cls.doc().split()) if cls is not None else ""
            params = {k: v for k, v in comp.model_dump().items() if k != "kind"}
            rules.append(f"- {comp.kind}{' ' + json.dumps(params) if params else ''}: {doc}")
    actions = "\n".join(f"{i}. {name}: {meaning}"
                        for i, (name, meaning) in enumerate(action_table(spec)))
    if reply == "json":
        form = ('Reply with JSON only, exactly {"action": "<name>"} where <name> is one of: '
                + ", ".join(n for n, _ in action_table(spec)) + ".")
    else:
        form = "Reply with the number of one action only."
    if spec.component("egocentric") is not None:
        where = ("The observation is the agent's own view: the agent stands in the middle of the "
                 "bottom row, facing up (the top of the view is straight ahead).")
    else:
        where = ("The agent is drawn as an arrow pointing where it faces: ^ north, > east, "
                 "v south, < west.")
    return (f"You are the agent in a grid world called {spec.name}. {spec.description}\n"
            f"An episode ends when the goal is reached, the agent dies, or after "
            f"{spec.max_steps} steps. Maximize the total reward.\n\n"
            f"# Rules of this world (its components)\n" + "\n".join(rules)
            + f"\n\n# Map legend (character: meaning)\n{_legend()}\n{where}\n\n"
            f"# Actions\n{actions}\n\n{form}")


# the compass name of each direction index (``symbols.DIR_DELTAS``: east, south, west, north)
FACING = ("east", "south", "west", "north")


def user_prompt(step: int, max_steps: int, observation: str,
                history: list[tuple[int, str, float]], total: float,
                carrying: bool | None = None, facing: str | None = None) -> str:
    """The user message of one decision: the step, recent history and the observation.
    ``facing``: the compass direction the agent faces, for views that turn with it (an
    egocentric view's top is "ahead", and cardinal actions need to know which way that is)."""
    lines = [f"Step {step + 1} of {max_steps}. Total reward so far: {total:g}."]
    if history:
        lines.append("Recent steps: " + "; ".join(f"step {t + 1}: {name} -> reward {r:g}"
                                                   for t, name, r in history) + ".")
    if facing is not None:
        lines.append(f"You face {facing} (the top of your view is {facing}).")
    if carrying is not None:
        lines.append("You are carrying an object." if carrying else "Your hands are empty.")
    lines.append(f"Observation:\n<observation>\n{observation}\n</observation>")
    lines.append("Your action?")
    return "\n".join(lines)


_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)


def _match_value(value: Any, names: list[str]) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < len(names) else None
    if isinstance(value, str):
        v = value.strip().lower()
        if v in names:
            return names.index(v)
        if v.isascii() and v.isdigit() and int(v) < len(names):  # not "²": int() refuses it
            return int(v)
    return None


def parse_action(text: str, names: list[str] | tuple[str, ...]) -> int | None:
    """The action a reply names, or None.

    Accepted, in order: a JSON object with an ``action`` field (a name or an index), anywhere in
    the reply; a reply that mentions exactly one action name as a whole word; a reply that is
    just an action index. Anything else (no name, several names, out of range) is None.
    """
    names = [n.lower() for n in names]
    if not isinstance(text, str) or not text.strip():
        return None
    candidates = [text.strip(), *_JSON_OBJECT.findall(text)]
    for chunk in candidates:
        try:
            obj = json.loads(chunk)
        except ValueError:
            continue
        if isinstance(obj, dict) and "action" in obj:
            hit = _match_value(obj["action"], names)
            if hit is not None:
                return hit
    words = set(re.findall(r"[a-z]+", text.lower()))
    named = [i for i, n in enumerate(names) if n in words]
    if len(named) == 1:
        return named[0]
    stripped = text.strip().strip(".").strip()
    if stripped.isascii() and stripped.isdigit() and int(stripped) < len(names):
        return int(stripped)
    return None
