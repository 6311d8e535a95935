"""Transition components of the grid family.

Actions are ``Discrete(7)`` for every grid world; the movement scheme gives them meaning.

Stage order within a step: ``action`` (rewrite the chosen action: permuted_controls,
slippery) -> ``decode`` (the movement scheme) -> ``interact`` (keys_doors, pushable_boxes) ->
the engine moves the agent -> ``post_move`` (ice_sliding, teleporters, wind, collapsing_floor).
``wrap_edges`` is read by the engine at build time (geometry), never called per step.

Stochastic components (``num_outcomes > 0``) draw their outcome from ``autoworld.rng`` with a
fixed stream id, unless ``ctx.outcomes[name]`` (B,) int64 forces it (the exact oracle enumerates
outcomes that way); ``outcome_probs()`` gives the matching (B, num_outcomes) distribution.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import torch
from pydantic import Field, field_validator

from autoworld import rng
from autoworld.envs.grid.components.registry import ComponentParams, GridComponent, register
from autoworld.envs.grid.symbols import CELL

NUM_ACTIONS = 7  # every grid world's action space is Discrete(7)

# Random stream ids of this module (10..29 are reserved for transition components).
STREAM_SLIP = 10
STREAM_SLIP_ACTION = 11
STREAM_WIND = 12


def _cell_at(grid: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Cell codes (B,) uint8 of ``grid`` (B, P) uint8 at flat indices ``idx`` (B,) int64."""
    return grid.gather(1, idx[:, None])[:, 0]


def _passable(engine, codes: torch.Tensor) -> torch.Tensor:
    """Whether the agent may stand on cells with ``codes`` (B,) uint8 (result (B,) bool)."""
    return engine.passable.index_select(0, codes.long())


def _set_cells(grid: torch.Tensor, idx: torch.Tensor, mask: torch.Tensor,
               value: torch.Tensor | int) -> None:
    """Write ``value`` at ``idx`` (B,) where ``mask`` (B,) is true, in place."""
    old = _cell_at(grid, idx)
    new = torch.where(mask, value, old).to(torch.uint8)
    grid.scatter_(1, idx[:, None], new[:, None])


def _forced_or_sampled(comp: GridComponent, ctx, sampled) -> torch.Tensor:
    """The outcome (B,) int64 of a stochastic component: forced by ``ctx.outcomes`` if given,
    else ``sampled()``; always 0 (the neutral outcome) for envs whose world lacks it."""
    forced = ctx.outcomes.get(comp.name)
    out = sampled() if forced is None else torch.as_tensor(forced, device=comp.device).long()
    return out if comp.all_active else torch.where(comp.active, out, 0)


def _decoded(comp: GridComponent, ctx, new_dir, move, pickup, drop, toggle) -> None:
    """Write a movement scheme's decoded intent into the step, for its own envs only."""
    if comp.all_active:
        ctx.state.dir, ctx.move = new_dir, move
        ctx.pickup, ctx.drop, ctx.toggle = pickup, drop, toggle
        return
    act = comp.active
    ctx.state.dir = torch.where(act, new_dir, ctx.state.dir)
    ctx.move = torch.where(act, move, ctx.move)
    ctx.pickup = torch.where(act, pickup, ctx.pickup)
    ctx.drop = torch.where(act, drop, ctx.drop)
    ctx.toggle = torch.where(act, toggle, ctx.toggle)


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
        _decoded(self, ctx, (s.dir + turn) % 4, a == 2, a == 3, a == 4, a == 5)


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
        _decoded(self, ctx, torch.where(is_move, a, s.dir), is_move, a == 4, a == 5, a == 6)


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
        pick = self.gate(ctx.pickup & (fc == CELL.KEY) & ~holding)
        drop = self.gate(ctx.drop & (fc == CELL.EMPTY) & holding)
        unlock = self.gate(ctx.toggle & (fc == CELL.DOOR_LOCKED) & holding)
        new_cell = torch.where(pick, int(CELL.EMPTY), fc)
        new_cell = torch.where(drop, int(CELL.KEY), new_cell)
        new_cell = torch.where(unlock, int(CELL.DOOR_OPEN), new_cell).to(torch.uint8)
        s.grid.scatter_(1, ctx.front[:, None], new_cell[:, None])
        s.carrying = torch.where(pick, 1, torch.where(drop, 0, s.carrying))
        ctx.front_cell = new_cell


# ============================================================================ action stage
def _check_permutation(value: list[int]) -> list[int]:
    if sorted(value) != list(range(NUM_ACTIONS)):
        raise ValueError(
            f"permutation must list each action 0..{NUM_ACTIONS - 1} exactly once "
            f"(got {value}); e.g. [1, 0, 2, 3, 4, 5, 6] swaps actions 0 and 1"
        )
    return value


@register
class PermutedControls(GridComponent):
    """Scrambled controls: the action the agent sends is remapped before the movement scheme
    reads it, ``action := permutation[action]``. ``permutation`` lists each of the 7 actions
    0..6 exactly once (the identity [0, 1, 2, 3, 4, 5, 6] changes nothing)."""

    class Params(ComponentParams):
        kind: Literal["permuted_controls"] = "permuted_controls"
        permutation: list[Annotated[int, Field(ge=0, le=NUM_ACTIONS - 1)]] = Field(
            default_factory=lambda: list(range(NUM_ACTIONS)),
            min_length=NUM_ACTIONS, max_length=NUM_ACTIONS,
            description="Action i is executed as action permutation[i]; a permutation of 0..6.",
        )

        @field_validator("permutation")
        @classmethod
        def _is_permutation(cls, value: list[int]) -> list[int]:
            return _check_permutation(value)

    factor = "transition"
    name = "permuted_controls"
    stage = "action"
    order = 10

    def setup(self) -> None:
        # absent envs get the identity from the neutral Params()
        self.table = self.per_env([p.permutation for p in self.unique_params],
                                  torch.long)  # (B, 7)

    def apply(self, ctx) -> None:
        ctx.action = self.table.gather(1, ctx.action[:, None])[:, 0]


@register
class Slippery(GridComponent):
    """Slippery controls: with probability ``prob`` the chosen action is replaced by a uniformly
    random action in 0..6 (which may be the chosen one). Outcomes: 0 no slip, k >= 1 the action
    is replaced by action k - 1."""

    class Params(ComponentParams):
        kind: Literal["slippery"] = "slippery"
        prob: float = Field(0.1, ge=0.0, le=1.0,
                            description="Probability that the action is replaced at random.")

    factor = "transition"
    name = "slippery"
    stage = "action"
    order = 20
    num_outcomes: ClassVar[int] = NUM_ACTIONS + 1

    def setup(self) -> None:
        self.prob = torch.where(self.active, self.column("prob"), 0.0)  # (B,) float32

    def outcome_probs(self) -> torch.Tensor:
        p = self.prob[:, None]
        slip = (p / NUM_ACTIONS).expand(-1, NUM_ACTIONS)
        return torch.cat([1.0 - p, slip], dim=1)  # (B, 8)

    def _sample(self, ctx) -> torch.Tensor:
        s = ctx.state
        slip = rng.uniform(s.key, s.tick, STREAM_SLIP) < self.prob
        rand = rng.randint(s.key, s.tick, STREAM_SLIP_ACTION, NUM_ACTIONS)
        return torch.where(slip, rand + 1, 0)

    def apply(self, ctx) -> None:
        outcome = _forced_or_sampled(self, ctx, lambda: self._sample(ctx))
        ctx.action = torch.where(outcome > 0, outcome - 1, ctx.action)


# ============================================================================ interact stage
@register
class PushableBoxes(GridComponent):
    """Sokoban boxes: moving into a box pushes it one cell further if that cell is empty floor
    or a target (a box on a target shows as box-on-target); the agent then steps into the
    freed cell. A box against a wall, another box or any other object does not move, and
    neither does the agent. Publishes the event ``box_delta`` (+1 a box landed on a target,
    -1 a box left a target) for rewards."""

    class Params(ComponentParams):
        kind: Literal["pushable_boxes"] = "pushable_boxes"

    factor = "transition"
    name = "pushable_boxes"
    stage = "interact"
    order = 20

    def apply(self, ctx) -> None:
        s = ctx.state
        fc = ctx.front_cell
        beyond = self.engine.neighbour(ctx.front, s.dir)
        bc = _cell_at(s.grid, beyond)
        is_box = (fc == CELL.BOX) | (fc == CELL.BOX_ON_TARGET)
        free = (bc == CELL.EMPTY) | (bc == CELL.TARGET)
        push = self.gate(ctx.move & is_box & free)
        onto_target = bc == CELL.TARGET
        off_target = fc == CELL.BOX_ON_TARGET
        box_cell = torch.where(onto_target, int(CELL.BOX_ON_TARGET), int(CELL.BOX))
        freed = torch.where(off_target, int(CELL.TARGET), int(CELL.EMPTY))
        _set_cells(s.grid, beyond, push, box_cell)
        _set_cells(s.grid, ctx.front, push, freed)
        ctx.front_cell = torch.where(push, freed, fc).to(fc.dtype)
        delta = onto_target.long() - off_target.long()
        ctx.events["box_delta"] = torch.where(push, delta, 0)  # (B,) int64


# ============================================================================ geometry
@register
class WrapEdges(GridComponent):
    """Wrap-around edges (a torus): moving off one edge of the grid re-enters on the opposite
    edge, in the same row or column. Meant for layouts without a border (``open_room`` with
    ``border: false``); with a wall ring the walls block first and nothing changes."""

    class Params(ComponentParams):
        kind: Literal["wrap_edges"] = "wrap_edges"

    factor = "transition"
    name = "wrap_edges"
    stage = "geometry"  # the engine wraps its neighbour tables at build; no per-step work
    order = 0

    def apply(self, ctx) -> None:
        return None


# ============================================================================ post-move stage
@register
class IceSliding(GridComponent):
    """Ice: an agent that moved this step onto an ice cell keeps sliding in its direction,
    cell by cell, while it stands on ice and the next cell is passable. It stops on the first
    non-ice cell it enters, or on the last ice cell before an impassable one."""

    class Params(ComponentParams):
        kind: Literal["ice_sliding"] = "ice_sliding"

    factor = "transition"
    name = "ice_sliding"
    stage = "post_move"
    order = 10

    def apply(self, ctx) -> None:
        eng, s = self.engine, ctx.state
        sliding = self.gate(s.pos != ctx.old_pos)
        pos = s.pos
        for _ in range(max(eng.H, eng.W)):  # static bound: the longest straight run
            nxt = eng.neighbour(pos, s.dir)
            on_ice = _cell_at(s.grid, pos) == CELL.ICE
            sliding = sliding & on_ice & _passable(eng, _cell_at(s.grid, nxt))
            pos = torch.where(sliding, nxt, pos)
        s.pos = pos


@register
class Teleporters(GridComponent):
    """A pair of teleporters: an agent that moves onto teleporter A is moved to teleporter B
    of the same level, and one that moves onto B is moved to A (arriving by teleport does not
    trigger the other end again). A level without both ends does nothing."""

    class Params(ComponentParams):
        kind: Literal["teleporters"] = "teleporters"

    factor = "transition"
    name = "teleporters"
    stage = "post_move"
    order = 20

    def level_data(self, engine) -> dict[str, torch.Tensor]:
        grid = engine.bank_grid  # (Ltot, P) uint8
        out = {}
        for key, code in (("teleport_a", CELL.TELEPORT_A), ("teleport_b", CELL.TELEPORT_B)):
            hit = (grid == code).to(torch.int32)
            first = hit.argmax(dim=1)  # first match (0 when none)
            out[key] = torch.where(hit.any(dim=1), first, engine.sentinel).long()  # (Ltot,)
        self.teleport_a, self.teleport_b = out["teleport_a"], out["teleport_b"]
        return out

    def apply(self, ctx) -> None:
        eng, s = self.engine, ctx.state
        moved = s.pos != ctx.old_pos
        cell = _cell_at(s.grid, s.pos)
        to_b = self.teleport_b.index_select(0, s.level)
        to_a = self.teleport_a.index_select(0, s.level)
        dest = torch.where(cell == CELL.TELEPORT_A, to_b, to_a)
        on_pad = (cell == CELL.TELEPORT_A) | (cell == CELL.TELEPORT_B)
        go = self.gate(moved & on_pad & (dest != eng.sentinel))
        s.pos = torch.where(go, dest, s.pos)


@register
class Wind(GridComponent):
    """Wind: after the move, with probability ``prob`` the agent is pushed one cell in the wind
    ``direction`` (0 east, 1 south, 2 west, 3 north) if that cell is passable; it does not turn.
    Outcomes: 0 calm, 1 pushed."""

    class Params(ComponentParams):
        kind: Literal["wind"] = "wind"
        direction: int = Field(0, ge=0, le=3,
                               description="Wind direction: 0 east, 1 south, 2 west, 3 north.")
        prob: float = Field(0.2, ge=0.0, le=1.0,
                            description="Probability per step that the wind pushes the agent.")

    factor = "transition"
    name = "wind"
    stage = "post_move"
    order = 30
    num_outcomes: ClassVar[int] = 2

    def setup(self) -> None:
        self.direction = self.column("direction", torch.long)  # (B,)
        self.prob = torch.where(self.active, self.column("prob"), 0.0)  # (B,) float32

    def outcome_probs(self) -> torch.Tensor:
        p = self.prob[:, None]
        return torch.cat([1.0 - p, p], dim=1)  # (B, 2)

    def apply(self, ctx) -> None:
        eng, s = self.engine, ctx.state
        outcome = _forced_or_sampled(
            self, ctx,
            lambda: (rng.uniform(s.key, s.tick, STREAM_WIND) < self.prob).long(),
        )
        nxt = eng.neighbour(s.pos, self.direction)
        push = (outcome == 1) & _passable(eng, _cell_at(s.grid, nxt))
        s.pos = torch.where(push, nxt, s.pos)


@register
class CollapsingFloor(GridComponent):
    """Cracked floor collapses: when the agent leaves a cracked cell, that cell becomes
    ``becomes`` (lava or wall), so it can be crossed only once."""

    class Params(ComponentParams):
        kind: Literal["collapsing_floor"] = "collapsing_floor"
        becomes: Literal["lava", "wall"] = Field(
            "lava", description="What a cracked cell turns into once the agent leaves it."
        )

    factor = "transition"
    name = "collapsing_floor"
    stage = "post_move"
    order = 40

    def setup(self) -> None:
        codes = {"lava": int(CELL.LAVA), "wall": int(CELL.WALL)}
        self.becomes = self.per_env([codes[p.becomes] for p in self.unique_params],
                                    torch.uint8)  # (B,)

    def apply(self, ctx) -> None:
        s = ctx.state
        left = (s.pos != ctx.old_pos) & (_cell_at(s.grid, ctx.old_pos) == CELL.CRACKED)
        _set_cells(s.grid, ctx.old_pos, self.gate(left), self.becomes)
