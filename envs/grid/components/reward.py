"""Reward (and termination) components of the grid family.

Every reward here is a function of the state (grid, position, direction, carrying, extras) and the
action only, so that the exact oracle can enumerate a level's state graph. Per-level constants
(coin counts, the goal's cell, ...) are precomputed once per level bank in ``level_data`` and
gathered with ``state.level``; per-episode memory lives in ``state.extras``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from pydantic import Field

from autoworld.envs.grid.components.registry import ComponentParams, GridComponent, register
from autoworld.envs.grid.symbols import CELL, Cell

if TYPE_CHECKING:
    from autoworld.envs.grid.engine import GridEngine, GridState, StepContext


# ------------------------------------------------------------------------- shared helpers
def entered(ctx: StepContext) -> torch.Tensor:
    """(B,) bool: the agent is on a different cell than before this step."""
    return ctx.state.pos != ctx.old_pos


def count_cells(engine: GridEngine, *codes: Cell) -> torch.Tensor:
    """(Ltot,) int64: number of cells with one of ``codes`` in every level of the bank."""
    hit = torch.zeros_like(engine.bank_grid, dtype=torch.bool)
    for code in codes:
        hit |= engine.bank_grid == int(code)
    return hit.sum(1)


def per_level(state: GridState, table: torch.Tensor) -> torch.Tensor:
    """Gather a per-level table (Ltot, ...) for every env's current level -> (B, ...)."""
    return table.index_select(0, state.level)


# ------------------------------------------------------------------------- components
@register
class ReachGoal(GridComponent):
    """Reaching a goal cell ends the episode with ``reward * (1 - time_decay * t / max_steps)``
    (MiniGrid's reward with the default time_decay 0.9; 0 gives a plain binary reward)."""

    class Params(ComponentParams):
        kind: Literal["reach_goal"] = "reach_goal"
        reward: float = Field(1.0, gt=0.0, le=10.0, description="Reward for reaching the goal.")
        time_decay: float = Field(
            0.9, ge=0.0, le=1.0, description="Fraction of the reward lost by the last step."
        )

    factor = "reward"
    name = "reach_goal"
    stage = "reward"
    order = 10

    def setup(self) -> None:
        self.reward = self.column("reward")
        self.time_decay = self.column("time_decay")

    def apply(self, ctx) -> None:
        hit = self.gate(ctx.cell == CELL.GOAL)
        ctx.reward_timed = ctx.reward_timed + hit.float() * self.reward
        ctx.terminated = ctx.terminated | hit


@register
class CollectItems(GridComponent):
    """Coins: stepping onto a coin cell gives ``reward`` and removes the coin (the cell becomes
    empty floor). With ``terminate_when_all`` the episode ends when the level's last coin is
    collected."""

    class Params(ComponentParams):
        kind: Literal["collect_items"] = "collect_items"
        reward: float = Field(1.0, gt=0.0, le=10.0, description="Reward per coin collected.")
        terminate_when_all: bool = Field(
            True, description="End the episode when the last coin of the level is collected."
        )

    factor = "reward"
    name = "collect_items"
    stage = "reward"
    order = 20
    extras = ("coins_left",)

    def setup(self) -> None:
        self.reward = self.column("reward")
        self.terminate_when_all = self.column("terminate_when_all", torch.bool)

    def level_data(self, engine) -> dict[str, torch.Tensor]:
        return {"coins_total": count_cells(engine, CELL.COIN)}

    def init_extras(self, state, fresh) -> dict[str, torch.Tensor]:
        return {"coins_left": per_level(state, self.engine.level_data["coins_total"]).clone()}

    def apply(self, ctx) -> None:
        s = ctx.state
        hit = self.gate(ctx.cell == CELL.COIN)
        new_cell = torch.where(hit, int(CELL.EMPTY), ctx.cell.long()).to(torch.uint8)
        s.grid.scatter_(1, s.pos[:, None], new_cell[:, None])
        left = s.extras["coins_left"] - hit.long()
        s.extras["coins_left"] = left
        ctx.reward_fixed = ctx.reward_fixed + hit.float() * self.reward
        ctx.terminated = ctx.terminated | (hit & (left <= 0) & self.terminate_when_all)


@register
class Hazard(GridComponent):
    """Lava: entering a lava cell gives ``-penalty`` and, if ``terminate``, ends the episode
    (MiniGrid's lava is penalty 0 with terminate)."""

    class Params(ComponentParams):
        kind: Literal["hazard"] = "hazard"
        penalty: float = Field(1.0, ge=0.0, le=10.0, description="Reward lost on entering lava.")
        terminate: bool = Field(True, description="Entering lava ends the episode.")

    factor = "reward"
    name = "hazard"
    stage = "reward"
    order = 30

    def setup(self) -> None:
        self.penalty = self.column("penalty")
        self.terminate = self.column("terminate", torch.bool)

    def apply(self, ctx) -> None:
        hit = self.gate((ctx.cell == CELL.LAVA) & entered(ctx))
        ctx.reward_fixed = ctx.reward_fixed - hit.float() * self.penalty
        ctx.terminated = ctx.terminated | (hit & self.terminate)


@register
class StepPenalty(GridComponent):
    """A constant ``-cost`` on every step, whatever the action (pushes for short solutions)."""

    class Params(ComponentParams):
        kind: Literal["step_penalty"] = "step_penalty"
        cost: float = Field(0.01, ge=0.0, le=0.1, description="Reward lost per step.")

    factor = "reward"
    name = "step_penalty"
    stage = "reward"
    order = 40

    def setup(self) -> None:
        self.cost = torch.where(self.active, self.column("cost"), 0.0)

    def apply(self, ctx) -> None:
        ctx.reward_fixed = ctx.reward_fixed - self.cost


@register
class OrderedSubgoals(GridComponent):
    """Checkpoints 1, 2, 3 must be entered in that order: entering the next checkpoint gives
    ``reward``; entering the level's last checkpoint (the highest number present) in order ends
    the episode. Entering a checkpoint ahead of its turn gives ``-penalty`` (0: nothing);
    re-entering a checkpoint already passed gives nothing."""

    class Params(ComponentParams):
        kind: Literal["ordered_subgoals"] = "ordered_subgoals"
        reward: float = Field(1.0, gt=0.0, le=10.0, description="Reward per in-order checkpoint.")
        penalty: float = Field(
            0.0, ge=0.0, le=10.0, description="Reward lost on entering a checkpoint out of order."
        )

    factor = "reward"
    name = "ordered_subgoals"
    stage = "reward"
    order = 50
    extras = ("progress",)

    def setup(self) -> None:
        self.reward = self.column("reward")
        self.penalty = self.column("penalty")

    def level_data(self, engine) -> dict[str, torch.Tensor]:
        g = engine.bank_grid
        last = torch.zeros(g.shape[0], dtype=torch.long, device=g.device)
        for k, code in enumerate((CELL.CHECKPOINT_1, CELL.CHECKPOINT_2, CELL.CHECKPOINT_3), 1):
            last = torch.where((g == int(code)).any(1), k, last)
        return {"checkpoints_last": last}  # (Ltot,) highest checkpoint number present, 0: none

    def init_extras(self, state, fresh) -> dict[str, torch.Tensor]:
        return {"progress": torch.zeros_like(state.pos)}

    def apply(self, ctx) -> None:
        s = ctx.state
        code = ctx.cell.long()
        is_cp = (code >= int(CELL.CHECKPOINT_1)) & (code <= int(CELL.CHECKPOINT_3))
        k = torch.where(is_cp, code - int(CELL.CHECKPOINT_1) + 1, 0)  # (B,) 1..3, 0: none
        progress = s.extras["progress"]
        moved = self.gate(is_cp & entered(ctx))
        in_order = moved & (k == progress + 1)
        early = moved & (k > progress + 1)
        s.extras["progress"] = torch.where(in_order, k, progress)
        last = per_level(s, self.engine.level_data["checkpoints_last"])
        ctx.reward_fixed = (ctx.reward_fixed + in_order.float() * self.reward
                            - early.float() * self.penalty)
        ctx.terminated = ctx.terminated | (in_order & (k == last))


@register
class Coverage(GridComponent):
    """Exploration: ``reward`` for every cell entered for the first time in the episode (the
    start cell counts as visited). With ``terminate_when_all`` the episode ends once every
    non-wall cell connected to the start has been visited."""

    class Params(ComponentParams):
        kind: Literal["coverage"] = "coverage"
        reward: float = Field(0.1, gt=0.0, le=1.0, description="Reward per newly visited cell.")
        terminate_when_all: bool = Field(
            False, description="End the episode when every reachable non-wall cell is visited."
        )

    factor = "reward"
    name = "coverage"
    stage = "reward"
    order = 60
    extras = ("visited",)

    def setup(self) -> None:
        self.reward = self.column("reward")
        self.terminate_when_all = self.column("terminate_when_all", torch.bool)
        self.any_terminate = any(p.terminate_when_all for p in self.unique_params)

    def level_data(self, engine) -> dict[str, torch.Tensor]:
        if not self.any_terminate:  # the flood fill is only needed for the termination rule
            return {"coverable_cells": torch.zeros_like(engine.bank_pos)}
        return {"coverable_cells": _reachable_counts(engine)}

    def init_extras(self, state, fresh) -> dict[str, torch.Tensor]:
        visited = torch.zeros(state.grid.shape, dtype=torch.bool, device=state.grid.device)
        visited.scatter_(1, state.pos[:, None], True)
        return {"visited": visited}  # (B, P) bool

    def apply(self, ctx) -> None:
        s = ctx.state
        visited = s.extras["visited"]
        new = self.gate(~visited.gather(1, s.pos[:, None])[:, 0])
        visited.scatter_(1, s.pos[:, None], True)
        ctx.reward_fixed = ctx.reward_fixed + new.float() * self.reward
        if self.any_terminate:
            total = per_level(s, self.engine.level_data["coverable_cells"])
            done = new & self.terminate_when_all & (visited.sum(1) >= total)
            ctx.terminated = ctx.terminated | done


def _reachable_counts(engine: GridEngine) -> torch.Tensor:
    """(Ltot,) int64: non-wall cells connected to the start of each level (4-neighbourhood,
    wrapping where the world wraps). A flood fill at engine build time, not in the step."""
    from autoworld.envs.grid.engine import Geometry

    nbr = engine._nbr.view(len(engine.geometries), engine.P, 4)  # (G, P, 4)
    counts = []
    for world, bank in zip(engine.worlds, engine.banks, strict=True):
        geom = Geometry(world.height, world.width, world.component("wrap_edges") is not None)
        table = nbr[engine.geometries.index(geom)]  # (P, 4)
        start = len(torch.cat(counts)) if counts else 0
        grid = engine.bank_grid[start:start + len(bank)]  # (L, P)
        open_ = grid != int(CELL.WALL)
        reach = torch.zeros_like(open_)
        reach.scatter_(1, engine.bank_pos[start:start + len(bank), None], True)
        while True:
            grown = reach | (reach[:, table].any(-1) & open_)
            if torch.equal(grown, reach):
                break
            reach = grown
        counts.append(reach.sum(1))
    return torch.cat(counts)


@register
class BoxOnTarget(GridComponent):
    """Sokoban scoring (with the ``pushable_boxes`` transition): ``reward`` each time a box is
    pushed onto a target, ``-reward`` each time one is pushed off; the episode ends when no box
    is left off target (a level without boxes never ends this way)."""

    class Params(ComponentParams):
        kind: Literal["box_on_target"] = "box_on_target"
        reward: float = Field(1.0, gt=0.0, le=10.0, description="Reward per box put on a target.")

    factor = "reward"
    name = "box_on_target"
    stage = "reward"
    order = 70
    extras = ("boxes_left",)

    def setup(self) -> None:
        self.reward = self.column("reward")

    def level_data(self, engine) -> dict[str, torch.Tensor]:
        return {"boxes_total": count_cells(engine, CELL.BOX)}  # (Ltot,) boxes off target

    def init_extras(self, state, fresh) -> dict[str, torch.Tensor]:
        return {"boxes_left": per_level(state, self.engine.level_data["boxes_total"]).clone()}

    def apply(self, ctx) -> None:
        delta = ctx.events.get("box_delta")  # (B,) int64, published by pushable_boxes
        if delta is None:
            return
        s = ctx.state
        delta = torch.where(self.active, delta, 0) if not self.all_active else delta
        left = s.extras["boxes_left"] - delta
        s.extras["boxes_left"] = left
        ctx.reward_fixed = ctx.reward_fixed + delta.float() * self.reward
        ctx.terminated = ctx.terminated | ((delta > 0) & (left <= 0))


@register
class InvertedGoal(GridComponent):
    """Inverse semantics: lava is the goal and the goal is deadly. Entering lava ends the episode
    with ``reward * (1 - time_decay * t / max_steps)``; entering a goal cell ends it with
    ``-reward``."""

    class Params(ComponentParams):
        kind: Literal["inverted_goal"] = "inverted_goal"
        reward: float = Field(1.0, gt=0.0, le=10.0, description="Reward for reaching lava.")
        time_decay: float = Field(
            0.9, ge=0.0, le=1.0, description="Fraction of the reward lost by the last step."
        )

    factor = "reward"
    name = "inverted_goal"
    stage = "reward"
    order = 80

    def setup(self) -> None:
        self.reward = self.column("reward")
        self.time_decay = self.column("time_decay")

    def apply(self, ctx) -> None:
        win = self.gate(ctx.cell == CELL.LAVA)
        lose = self.gate(ctx.cell == CELL.GOAL)
        ctx.reward_timed = ctx.reward_timed + win.float() * self.reward
        ctx.reward_fixed = ctx.reward_fixed - lose.float() * self.reward
        ctx.terminated = ctx.terminated | win | lose


@register
class DistanceShaping(GridComponent):
    """Potential-based shaping towards the goal: each step adds ``scale * (phi(s') - phi(s))``
    with ``phi = -(Manhattan distance to the nearest goal cell) / (height + width)`` (0 in a
    level without a goal) and ``phi = 0`` once the episode has terminated. With no discount the
    shaping of an episode telescopes to ``scale * (phi(end) - phi(start))``, so it leaves the
    optimal policy unchanged (Ng et al., 1999) and the oracle's optimum stays exact."""

    class Params(ComponentParams):
        kind: Literal["distance_shaping"] = "distance_shaping"
        scale: float = Field(1.0, gt=0.0, le=10.0, description="Weight of the shaping term.")

    factor = "reward"
    name = "distance_shaping"
    stage = "reward"
    order = 1000  # last: it reads the termination decided by the other reward components

    def setup(self) -> None:
        self.scale = torch.where(self.active, self.column("scale"), 0.0)
        self.norm = (self.engine.height + self.engine.width).to(torch.float32)  # (B,)

    def level_data(self, engine) -> dict[str, torch.Tensor]:
        goal = engine.bank_grid[:, :-1] == int(CELL.GOAL)  # (Ltot, P - 1)
        k = max(int(goal.sum(1).max()), 1)
        # up to k goal cells per level, padded with -1; topk picks goal cells first
        order = torch.topk(goal.to(torch.float32), k, dim=1, sorted=True)
        cells = torch.where(order.values > 0, order.indices, -1)
        return {"goal_cells": cells}  # (Ltot, k) int64 flat frame indices, -1: no goal

    def potential(self, level: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """(B,) float32 phi of flat positions ``pos`` (B,) in levels ``level`` (B,)."""
        W = self.engine.W
        cells = self.engine.level_data["goal_cells"].index_select(0, level)  # (B, k)
        pos = pos[:, None]
        dist = (pos // W - cells // W).abs() + (pos % W - cells % W).abs()
        dist = torch.where(cells >= 0, dist, torch.iinfo(torch.long).max)
        nearest = dist.min(1).values
        has_goal = cells[:, 0] >= 0
        return torch.where(has_goal, -nearest.to(torch.float32) / self.norm, 0.0)

    def apply(self, ctx) -> None:
        s = ctx.state
        new = torch.where(ctx.terminated, 0.0, self.potential(s.level, s.pos))
        old = self.potential(s.level, ctx.old_pos)
        ctx.reward_fixed = ctx.reward_fixed + self.scale * (new - old)
