"""Reward (and termination) components of the grid family."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from autoworld.envs.grid.components.registry import ComponentParams, GridComponent, register
from autoworld.envs.grid.symbols import Cell


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
        hit = self.gate(ctx.cell == Cell.GOAL)
        ctx.reward_timed = ctx.reward_timed + hit.float() * self.reward
        ctx.terminated = ctx.terminated | hit
