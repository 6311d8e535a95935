"""AutoEnv's taxonomy of a world, read off its components.

Four axes, each with two values:

- ``reward``: ``binary`` when the only positive reward is a terminal one (reach the goal), else
  ``cumulative`` (coins, coverage, subgoals, boxes on targets, shaping, step penalties, ...).
- ``observation``: ``full`` or ``partial`` (egocentric view, line of sight, random masking).
- ``semantics``: ``aligned`` or ``inverse`` (permuted symbols, inverted goal, permuted controls).
- ``dynamics``: ``deterministic`` or ``stochastic`` (slippery floor, wind, ... with a probability
  above zero; observation noise does not make the dynamics stochastic).

Components are matched by their ``kind`` strings, so a kind that is not registered (yet) simply
does not match; a transition component registered with random outcomes (``num_outcomes > 0``)
counts as stochastic even when it is not listed here.
"""

from __future__ import annotations

from typing import Any

AXES = ("reward", "observation", "semantics", "dynamics")
VALUES = {
    "reward": ("binary", "cumulative"),
    "observation": ("full", "partial"),
    "semantics": ("aligned", "inverse"),
    "dynamics": ("deterministic", "stochastic"),
}

# Rewards that pay along the way (or charge per step); terminal-only ones (reach_goal,
# inverted_goal, hazard penalties) keep a world binary.
CUMULATIVE_REWARD_KINDS = frozenset(
    {"collect_items", "coverage", "ordered_subgoals", "box_on_target", "distance_shaping",
     "step_penalty"}
)
PARTIAL_OBSERVATION_KINDS = frozenset({"egocentric", "line_of_sight", "random_mask"})
INVERSE_SEMANTICS_KINDS = frozenset({"permuted_symbols", "inverted_goal", "permuted_controls"})
STOCHASTIC_TRANSITION_KINDS = frozenset({"slippery", "wind"})


def _kinds(components: Any) -> list[str]:
    return [str(c.kind) for c in components]


def _has_positive_probability(component: Any) -> bool:
    """True unless every probability-like parameter of the component is zero."""
    probs = [
        v for name, v in component.model_dump().items()
        if ("prob" in name or name in ("p", "chance", "rate")) and isinstance(v, (int, float))
    ]
    return not probs or any(v > 0 for v in probs)


def _is_stochastic(component: Any) -> bool:
    from autoworld.envs.grid.components.registry import REGISTRY

    kind = str(component.kind)
    cls = REGISTRY.get(kind)
    random_kind = kind in STOCHASTIC_TRANSITION_KINDS or (
        cls is not None and cls.factor == "transition" and cls.num_outcomes > 0
    )
    return random_kind and _has_positive_probability(component)


def tags(spec: Any) -> dict[str, str]:
    """The taxonomy of ``spec`` (a WorldSpec) as ``{axis: value}`` for the four axes.

    Example:
        >>> from autoworld.envs.catalogue import load_world
        >>> tags(load_world("DoorKey-8x8"))["observation"]
        'partial'
    """
    rewards = set(_kinds(spec.reward))
    observations = set(_kinds(spec.observation))
    every = rewards | observations | set(_kinds(spec.transition))
    return {
        "reward": "cumulative" if rewards & CUMULATIVE_REWARD_KINDS else "binary",
        "observation": "partial" if observations & PARTIAL_OBSERVATION_KINDS else "full",
        "semantics": "inverse" if every & INVERSE_SEMANTICS_KINDS else "aligned",
        "dynamics": (
            "stochastic" if any(_is_stochastic(c) for c in spec.transition) else "deterministic"
        ),
    }


def tag_list(spec: Any) -> list[str]:
    """The taxonomy as a flat list in axis order, e.g. ``["binary", "partial", "aligned",
    "deterministic"]``."""
    t = tags(spec)
    return [t[axis] for axis in AXES]


def arm_tags(spec: Any) -> dict[str, str]:
    """The taxonomy of an arm world (``envs/arm``): its reward is ``cumulative`` when it shapes
    (pays for progress every step), else ``binary`` (the success bonus); it observes its joints
    and the scene's objects (``full``), with aligned semantics and deterministic kinematics
    (scenes are drawn at reset, not during an episode).

    Example:
        >>> from autoworld.envs.arm.registration import load_arm_world
        >>> arm_tags(load_arm_world("ArmReach-N3"))["reward"]
        'cumulative'
    """
    return {"reward": "cumulative" if spec.shaping > 0 else "binary", "observation": "full",
            "semantics": "aligned", "dynamics": "deterministic"}


ALL_TAGS = tuple(v for axis in AXES for v in VALUES[axis])
