"""Parameter models of the grid layout generators and object placement (data only).

The generators themselves live in ``layouts.py``; this module only fixes the typed, bounded
parameters that a WorldSpec carries, so that the spec schema does not depend on generator code.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Layout(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OpenRoomLayout(_Layout):
    """One open room. With ``border=False`` the outer wall ring is left out (for wrap-around)."""

    kind: Literal["open_room"] = "open_room"
    border: bool = Field(True, description="Surround the room with a ring of walls.")
    wall_density: float = Field(
        0.0, ge=0.0, le=0.3, description="Fraction of interior cells turned into wall blocks."
    )


class RoomsLayout(_Layout):
    """A grid of rooms joined by doorways; some doorways may be locked doors with a key."""

    kind: Literal["rooms"] = "rooms"
    rooms_x: int = Field(2, ge=1, le=4, description="Rooms per row.")
    rooms_y: int = Field(2, ge=1, le=4, description="Rooms per column.")
    locked_doors: int = Field(
        0, ge=0, le=1, description="Locked doors (each needs the one key, placed before it)."
    )


class MazeLayout(_Layout):
    """A perfect maze (randomized depth-first search), optionally braided to add loops."""

    kind: Literal["maze"] = "maze"
    braid: float = Field(
        0.0, ge=0.0, le=1.0, description="Fraction of dead ends opened up into loops."
    )


class LavaFieldLayout(_Layout):
    """An open room strewn with lava pools, always leaving a safe path to the goal."""

    kind: Literal["lava_field"] = "lava_field"
    lava_density: float = Field(
        0.2, ge=0.0, le=0.5, description="Fraction of interior cells that are lava."
    )


class SokobanLayout(_Layout):
    """A room with boxes and as many targets; boxes are never placed against walls."""

    kind: Literal["sokoban"] = "sokoban"
    boxes: int = Field(1, ge=1, le=4, description="Number of boxes (and targets).")
    wall_density: float = Field(
        0.0, ge=0.0, le=0.2, description="Fraction of interior cells turned into wall blocks."
    )


class DoorKeyLayout(_Layout):
    """MiniGrid's DoorKey: a wall splits the room, a locked door in it, the key on the agent's
    side, the goal in the bottom-right corner."""

    kind: Literal["doorkey"] = "doorkey"


Layout = Annotated[
    OpenRoomLayout | RoomsLayout | MazeLayout | LavaFieldLayout | SokobanLayout | DoorKeyLayout,
    Field(discriminator="kind"),
]
LAYOUT_KINDS = ("open_room", "rooms", "maze", "lava_field", "sokoban", "doorkey")


class Objects(BaseModel):
    """Objects scattered on free floor after the layout is drawn."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    goal: bool = Field(True, description="Place one goal cell (unless the layout placed one).")
    coins: int = Field(0, ge=0, le=20, description="Coins to collect.")
    lava: float = Field(0.0, ge=0.0, le=0.3, description="Extra lava cells, fraction of floor.")
    ice: float = Field(0.0, ge=0.0, le=0.6, description="Ice cells, fraction of floor.")
    cracked: float = Field(
        0.0, ge=0.0, le=0.4, description="Cracked floor cells (may collapse), fraction of floor."
    )
    teleporters: bool = Field(False, description="Place one teleporter pair (T and U).")
    checkpoints: int = Field(0, ge=0, le=3, description="Ordered checkpoints 1..n to visit.")
