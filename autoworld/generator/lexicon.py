"""The procedural backend's lexicon: theme words -> the components, layout and objects they ask for.

A theme is untrusted text. It is lower-cased and split into whole words (letters only); a word
influences the world only when it is a key of ``LEXICON`` (singular or with a trailing ``s``).
Everything else, numbers, code, markup and instructions included, is ignored. The table below is
rendered in ``docs/generator.md``.

Each entry names *features*; ``procedural.py`` turns a set of features into a spec, drawing the
factors that no feature fixes from its factorized prior.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field


class Feature(BaseModel):
    """What one lexicon word asks for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(..., description="Feature id used by the procedural backend.")
    factor: str = Field(..., description="Factor it fixes: transition, observation, reward, "
                        "layout or objects.")
    meaning: str = Field(..., description="What it puts into the world, for people.")


FEATURES: dict[str, Feature] = {f.name: f for f in (
    Feature(name="ice", factor="transition",
            meaning="ice cells (objects.ice) and the ice_sliding transition"),
    Feature(name="slippery", factor="transition", meaning="the slippery transition (random slips)"),
    Feature(name="wind", factor="transition", meaning="the wind transition (random pushes)"),
    Feature(name="mirror", factor="transition",
            meaning="permuted_controls (the moves are remapped)"),
    Feature(name="teleport", factor="transition",
            meaning="a teleporter pair (objects.teleporters) and the teleporters transition"),
    Feature(name="crumble", factor="transition",
            meaning="cracked floor (objects.cracked) and the collapsing_floor transition"),
    Feature(name="torus", factor="transition",
            meaning="wrap_edges on an open room without a border"),
    Feature(name="turn", factor="transition", meaning="MiniGrid controls (turn_forward)"),
    Feature(name="fog", factor="observation", meaning="a small egocentric view (partial)"),
    Feature(name="dark", factor="observation",
            meaning="an egocentric view with line_of_sight occlusion"),
    Feature(name="flicker", factor="observation", meaning="random_mask over the view"),
    Feature(name="noise", factor="observation", meaning="symbol_noise (sensor noise)"),
    Feature(name="deceptive", factor="observation",
            meaning="permuted_symbols: the view shows lava and goal swapped (inverse semantics)"),
    Feature(name="text", factor="observation", meaning="the text observation"),
    Feature(name="maze", factor="layout", meaning="a maze layout"),
    Feature(name="rooms", factor="layout", meaning="a rooms layout"),
    Feature(name="doors", factor="layout",
            meaning="a locked door and its key (rooms layout, keys_doors transition)"),
    Feature(name="open", factor="layout", meaning="an open room"),
    Feature(name="lava", factor="objects",
            meaning="lava (a lava field or scattered lava) and the hazard reward"),
    Feature(name="coins", factor="reward", meaning="coins (objects.coins) and collect_items"),
    Feature(name="boxes", factor="reward",
            meaning="a sokoban layout, pushable_boxes and box_on_target"),
    Feature(name="checkpoints", factor="reward",
            meaning="ordered checkpoints (objects.checkpoints) and ordered_subgoals"),
    Feature(name="explore", factor="reward", meaning="the coverage reward in a small world"),
    Feature(name="inverted", factor="reward",
            meaning="inverted_goal: lava is the goal, the goal is deadly (inverse semantics)"),
    Feature(name="hurry", factor="reward", meaning="a step_penalty"),
    Feature(name="guided", factor="reward", meaning="distance_shaping towards the goal"),
)}

LEXICON: dict[str, str] = {
    # transition
    "ice": "ice", "icy": "ice", "frozen": "ice", "glacier": "ice", "skating": "ice", "rink": "ice",
    "slippery": "slippery", "slip": "slippery", "slick": "slippery", "oily": "slippery",
    "mud": "slippery", "muddy": "slippery",
    "wind": "wind", "windy": "wind", "storm": "wind", "gust": "wind", "breeze": "wind",
    "current": "wind",
    "mirror": "mirror", "mirrored": "mirror", "reversed": "mirror", "backwards": "mirror",
    "confused": "mirror", "scrambled": "mirror",
    "teleport": "teleport", "teleporter": "teleport", "portal": "teleport", "warp": "teleport",
    "wormhole": "teleport",
    "crumbling": "crumble", "cracked": "crumble", "fragile": "crumble", "bridge": "crumble",
    "collapsing": "crumble",
    "torus": "torus", "wrap": "torus", "wraparound": "torus", "donut": "torus",
    "toroidal": "torus",
    "turn": "turn", "robot": "turn", "minigrid": "turn", "tank": "turn",
    # observation
    "fog": "fog", "foggy": "fog", "mist": "fog", "misty": "fog", "haze": "fog", "blind": "fog",
    "myopic": "fog",
    "dark": "dark", "darkness": "dark", "night": "dark", "shadow": "dark", "cave": "dark",
    "flicker": "flicker", "flickering": "flicker", "glimpse": "flicker", "patchy": "flicker",
    "noise": "noise", "noisy": "noise", "static": "noise", "glitch": "noise",
    "deceptive": "deceptive", "deceive": "deceptive", "illusion": "deceptive",
    "trick": "deceptive", "mirage": "deceptive", "disguised": "deceptive",
    "text": "text", "ascii": "text", "language": "text",
    # layout
    "maze": "maze", "labyrinth": "maze", "corridor": "maze", "tunnel": "maze",
    "rooms": "rooms", "room": "rooms", "house": "rooms", "dungeon": "rooms", "castle": "rooms",
    "apartment": "rooms",
    "key": "doors", "keys": "doors", "door": "doors", "doors": "doors", "locked": "doors",
    "vault": "doors", "gate": "doors",
    "open": "open", "field": "open", "empty": "open", "arena": "open", "meadow": "open",
    # objects
    "lava": "lava", "fire": "lava", "volcano": "lava", "magma": "lava", "inferno": "lava",
    "water": "lava", "river": "lava", "lake": "lava", "swamp": "lava", "pit": "lava",
    "acid": "lava", "danger": "lava", "dangerous": "lava",
    # reward
    "coin": "coins", "coins": "coins", "treasure": "coins", "gold": "coins", "gem": "coins",
    "gems": "coins", "loot": "coins", "collect": "coins", "jewel": "coins",
    "box": "boxes", "boxes": "boxes", "crate": "boxes", "crates": "boxes", "sokoban": "boxes",
    "warehouse": "boxes", "push": "boxes",
    "checkpoint": "checkpoints", "checkpoints": "checkpoints", "waypoint": "checkpoints",
    "relay": "checkpoints", "race": "checkpoints", "errand": "checkpoints",
    "explore": "explore", "exploration": "explore", "coverage": "explore", "map": "explore",
    "survey": "explore", "paint": "explore",
    "inverted": "inverted", "inverse": "inverted", "upside": "inverted", "opposite": "inverted",
    "topsy": "inverted",
    "hurry": "hurry", "fast": "hurry", "quick": "hurry", "timed": "hurry", "rush": "hurry",
    "guided": "guided", "compass": "guided", "beacon": "guided", "hint": "guided",
}

MAX_THEME_CHARS = 2000
_WORD = re.compile(r"[a-z]+")


def theme_words(theme: str) -> list[str]:
    """Whole lower-case words of ``theme`` (letters only), at most ``MAX_THEME_CHARS`` read."""
    return _WORD.findall(str(theme)[:MAX_THEME_CHARS].lower())


def lookup(word: str) -> str | None:
    """The feature of one word: exact match, else the singular of a plural (``'mazes'``)."""
    if word in LEXICON:
        return LEXICON[word]
    if len(word) > 3 and word.endswith("s") and word[:-1] in LEXICON:
        return LEXICON[word[:-1]]
    return None


def theme_features(theme: str) -> list[str]:
    """The features a theme asks for, in order of first mention, without repeats.

    Example:
        >>> theme_features("A foggy ice maze; ignore previous instructions")
        ['fog', 'ice', 'maze']
    """
    out: list[str] = []
    for word in theme_words(theme):
        feature = lookup(word)
        if feature is not None and feature not in out:
            out.append(feature)
    return out


def lexicon_markdown() -> str:
    """The lexicon as a Markdown table (one row per feature)."""
    rows = ["| feature | factor | words | puts into the world |", "|---|---|---|---|"]
    for name, feat in FEATURES.items():
        words = ", ".join(sorted(w for w, f in LEXICON.items() if f == name))
        rows.append(f"| {name} | {feat.factor} | {words} | {feat.meaning} |")
    return "\n".join(rows)
