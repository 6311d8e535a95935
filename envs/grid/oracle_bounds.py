"""Certified upper bounds of the grid oracle, computed from a level or a spec without a solve.

``return_upper_bound`` is what ``oracle.solve`` returns (with ``exact=False``) for a level with
more reachable states than its cap: the sum over the world's reward components of the most each
can pay on this level. reach_goal: its reward, decayed for the fewest steps that can reach a goal
(Manhattan distance, halved with wind, 1 with ice or teleporters); inverted_goal: likewise for
lava; collect_items: coins x reward; ordered_subgoals: checkpoints x reward; box_on_target: boxes
that can still land on a target x reward; coverage: min(max_steps, open cells - 1) x reward;
distance_shaping: scale x the start's potential gap (the shaping telescopes); hazard and
step_penalty: 0. A reward kind without a known bound falls back to max_steps x the sum of its
positive numeric parameters, with a logged warning.

``state_count_bound`` bounds the reachable states of any level of a spec from the spec alone (the
procedural generator sizes its proposals with it).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np

from autoworld.envs.grid.level import Level
from autoworld.envs.grid.symbols import Cell

log = logging.getLogger(__name__)


def _count(grid: np.ndarray, *codes: Cell) -> int:
    return int(np.isin(grid, [int(c) for c in codes]).sum())


def _open_cells(spec, level: Level) -> int:
    from autoworld.envs.grid.layouts import reachable

    open_ = level.grid != Cell.WALL
    wrap = spec.component("wrap_edges") is not None
    return int(reachable(open_, level.agent_pos, wrap).sum())


def _shaping_gap(spec, level: Level, scale: float) -> float:
    goals = np.argwhere(level.grid == Cell.GOAL)
    if len(goals) == 0:
        return 0.0
    r, c = level.agent_pos
    dist = int(np.min(np.abs(goals[:, 0] - r) + np.abs(goals[:, 1] - c)))
    return scale * dist / (spec.height + spec.width)


def _boxes_gain(level: Level) -> int:
    boxes = _count(level.grid, Cell.BOX, Cell.BOX_ON_TARGET)
    targets = _count(level.grid, Cell.TARGET, Cell.BOX_ON_TARGET)
    return max(0, min(boxes, targets) - _count(level.grid, Cell.BOX_ON_TARGET))


def _min_steps(spec, level: Level, code: Cell) -> int | None:
    """A lower bound on the steps from the start to a ``code`` cell (None: there is none)."""
    cells = np.argwhere(level.grid == code)
    if len(cells) == 0:
        return None
    if spec.component("teleporters") is not None or spec.component("ice_sliding") is not None:
        return 1  # one step may cover any distance
    dr = np.abs(cells[:, 0] - level.agent_pos[0])
    dc = np.abs(cells[:, 1] - level.agent_pos[1])
    if spec.component("wrap_edges") is not None:
        dr, dc = np.minimum(dr, spec.height - dr), np.minimum(dc, spec.width - dc)
    d = int((dr + dc).min())
    if spec.component("wind") is not None:
        d = (d + 1) // 2  # the wind may add one cell per step
    return max(1, d)


def _timed_bound(spec, level: Level, code: Cell, reward: float, decay: float) -> float:
    """Most a terminal ``reward * (1 - decay * t / max_steps)`` on a ``code`` cell can pay: at
    the earliest step, in the engine's float32 arithmetic."""
    t = _min_steps(spec, level, code)
    if t is None or t > spec.max_steps:
        return 0.0
    f32 = np.float32
    factor = f32(1.0) - f32(decay) * f32(t) / f32(spec.max_steps)
    return float(f32(reward) * factor)


_BOUNDS: dict[str, Callable[[object, Level, object], float]] = {
    "reach_goal": lambda s, lv, p: _timed_bound(s, lv, Cell.GOAL, p.reward, p.time_decay),
    "inverted_goal": lambda s, lv, p: _timed_bound(s, lv, Cell.LAVA, p.reward, p.time_decay),
    "collect_items": lambda s, lv, p: p.reward * _count(lv.grid, Cell.COIN),
    "ordered_subgoals": lambda s, lv, p: p.reward * _count(
        lv.grid, Cell.CHECKPOINT_1, Cell.CHECKPOINT_2, Cell.CHECKPOINT_3),
    "box_on_target": lambda s, lv, p: p.reward * _boxes_gain(lv),
    "coverage": lambda s, lv, p: p.reward * min(s.max_steps, _open_cells(s, lv) - 1),
    "distance_shaping": lambda s, lv, p: _shaping_gap(s, lv, p.scale),
    "hazard": lambda s, lv, p: 0.0,
    "step_penalty": lambda s, lv, p: 0.0,
}


def return_upper_bound(spec, level: Level) -> float:
    """A certified upper bound on the return of any policy on ``level`` (see the module
    docstring): the sum over reward components of the most each can pay."""
    total = 0.0
    for comp in spec.reward:
        fn = _BOUNDS.get(comp.kind)
        if fn is None:
            numeric = [v for k, v in comp.model_dump().items()
                       if isinstance(v, int | float) and not isinstance(v, bool)
                       and "decay" not in k and v > 0]
            log.warning("no return bound known for reward %r; using max_steps x its positive "
                        "parameters", comp.kind)
            total += spec.max_steps * float(sum(numeric))
        else:
            total += float(fn(spec, level, comp))
    return total


def state_count_bound(spec) -> int:
    """An upper bound on the reachable states of any one level of ``spec``, from the spec alone
    (cheap: no level is drawn). A state is (agent cell, facing, the cells that can change, the
    components' extras): the agent stands on one of the C cells inside the border (all H x W
    cells without one) and faces one of 4 ways; one key (``keys_doors`` with a locked door in
    the layout) lies on one of the C cells or is carried, and its door is locked or open; each
    coin is there or collected; the boxes lie on C-choose-boxes cells; each cracked cell is
    whole or collapsed; checkpoints add their progress counter (0..n); coverage adds a visited
    bit per cell. Every other component keeps the grid as it is.

    Example:
        >>> from autoworld.envs.catalogue import load_world
        >>> state_count_bound(load_world("DoorKey-8x8")) >= 4_000
        True
    """
    lay, obj = spec.layout, spec.objects
    border = getattr(lay, "border", True)
    cells = (spec.height - 2) * (spec.width - 2) if border else spec.height * spec.width
    kinds = {c.kind for factor in (spec.transition, spec.reward) for c in factor}
    bound = cells * 4
    locked = lay.kind == "doorkey" or (lay.kind == "rooms" and lay.locked_doors > 0)
    if locked and "keys_doors" in kinds:
        bound *= (cells + 1) * 2
    bound *= 2 ** obj.coins
    if lay.kind == "sokoban":
        bound *= math.comb(cells, lay.boxes)
    if obj.cracked > 0 and "collapsing_floor" in kinds:
        bound *= 2 ** int(round(obj.cracked * cells))
    if obj.checkpoints:
        bound *= obj.checkpoints + 1
    if "coverage" in kinds:
        bound *= 2 ** cells
    return int(bound)
