"""Transition components of the grid family.

Actions are ``Discrete(7)`` for every grid world; the movement scheme gives them meaning.
"""

from __future__ import annotations

from typing import Literal

import torch

from autoworld.envs.grid.components.registry import ComponentParams, GridComponent, register
from autoworld.envs.grid.symbols import Cell


@register
class TurnForward(GridComponent):
    """MiniGrid controls: 0 turn left, 1 turn right, 2 forward, 3 pick up, 4 drop, 5 toggle,
    6 done (no-op)."""

    class Params(ComponentParams):
        kind: Literal["turn_forward"] = "turn_forward"

    factor = "transition"
    name = "turn_forward"
    stage = "decode"
    order = 10

    def apply(self, ctx) -> None:
        a = ctx.action
        s = ctx.state
        turn = torch.where(a == 0, -1, torch.where(a == 1, 1, 0))
        new_dir = (s.dir + turn) % 4
        if self.all_active:
            s.dir = new_dir
            ctx.move = a == 2
            ctx.pickup, ctx.drop, ctx.toggle = a == 3, a == 4, a == 5
        else:
            act = self.active
            s.dir = torch.where(act, new_dir, s.dir)
            ctx.move = torch.where(act, a == 2, ctx.move)
            ctx.pickup = torch.where(act, a == 3, ctx.pickup)
            ctx.drop = torch.where(act, a == 4, ctx.drop)
            ctx.toggle = torch.where(act, a == 5, ctx.toggle)


@register
class Cardinal(GridComponent):
    """Cardinal moves: 0 east, 1 south, 2 west, 3 north (face that way and step), 4 pick up,
    5 drop, 6 toggle."""

    class Params(ComponentParams):
        kind: Literal["cardinal"] = "cardinal"

    factor = "transition"
    name = "cardinal"
    stage = "decode"
    order = 20

    def apply(self, ctx) -> None:
        a = ctx.action
        s = ctx.state
        is_move = a < 4
        new_dir = torch.where(is_move, a, s.dir)
        if self.all_active:
            s.dir = new_dir
            ctx.move = is_move
            ctx.pickup, ctx.drop, ctx.toggle = a == 4, a == 5, a == 6
        else:
            act = self.active
            s.dir = torch.where(act, new_dir, s.dir)
            ctx.move = torch.where(act, is_move, ctx.move)
            ctx.pickup = torch.where(act, a == 4, ctx.pickup)
            ctx.drop = torch.where(act, a == 5, ctx.drop)
            ctx.toggle = torch.where(act, a == 6, ctx.toggle)


@register
class KeysDoors(GridComponent):
    """Keys and locked doors: pick up a key in front (hands empty), drop it on empty floor in
    front, toggle a locked door in front open while carrying a key (the key is kept)."""

    class Params(ComponentParams):
        kind: Literal["keys_doors"] = "keys_doors"

    factor = "transition"
    name = "keys_doors"
    stage = "interact"
    order = 10

    def apply(self, ctx) -> None:
        s = ctx.state
        fc = ctx.front_cell
        holding = s.carrying > 0
        pick = self.gate(ctx.pickup & (fc == Cell.KEY) & ~holding)
        drop = self.gate(ctx.drop & (fc == Cell.EMPTY) & holding)
        unlock = self.gate(ctx.toggle & (fc == Cell.DOOR_LOCKED) & holding)
        new_cell = torch.where(pick, int(Cell.EMPTY), fc)
        new_cell = torch.where(drop, int(Cell.KEY), new_cell)
        new_cell = torch.where(unlock, int(Cell.DOOR_OPEN), new_cell).to(torch.uint8)
        s.grid.scatter_(1, ctx.front[:, None], new_cell[:, None])
        s.carrying = torch.where(pick, 1, torch.where(drop, 0, s.carrying))
        ctx.front_cell = new_cell
