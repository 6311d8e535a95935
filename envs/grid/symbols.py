"""Cell and observation symbols of the grid family.

A level's grid is a uint8 array of these codes; the agent is not stored in the grid (its position
and direction are separate state). Observations reuse the same codes, plus ``AGENT_*`` marks (full
views), ``UNSEEN`` (occluded, masked or outside the world) and ``PAD`` (outside the view of a
smaller
world in a mixed batch).
"""

from __future__ import annotations

from enum import IntEnum


class Cell(IntEnum):
    EMPTY = 0
    WALL = 1
    GOAL = 2
    LAVA = 3
    KEY = 4
    DOOR_LOCKED = 5
    DOOR_OPEN = 6
    BOX = 7
    TARGET = 8
    BOX_ON_TARGET = 9
    COIN = 10
    ICE = 11
    TELEPORT_A = 12
    TELEPORT_B = 13
    CHECKPOINT_1 = 14
    CHECKPOINT_2 = 15
    CHECKPOINT_3 = 16
    CRACKED = 17
    # observation-only symbols
    UNSEEN = 18
    AGENT_N = 19
    AGENT_E = 20
    AGENT_S = 21
    AGENT_W = 22
    PAD = 23


NUM_SYMBOLS = 24
NUM_CELL_TYPES = 18  # codes that may appear in a level grid

# Cells the agent can stand on. Lava, cracked floor and checkpoints are enterable (their effect
# comes from reward/transition components); boxes are entered only by pushing them.
PASSABLE = frozenset(
    {
        Cell.EMPTY, Cell.GOAL, Cell.LAVA, Cell.DOOR_OPEN, Cell.TARGET, Cell.COIN, Cell.ICE,
        Cell.TELEPORT_A, Cell.TELEPORT_B, Cell.CHECKPOINT_1, Cell.CHECKPOINT_2,
        Cell.CHECKPOINT_3, Cell.CRACKED,
    }
)

# One character per symbol, for ASCII levels, text observations and `autoworld show`.
CHARS = {
    Cell.EMPTY: ".",
    Cell.WALL: "#",
    Cell.GOAL: "G",
    Cell.LAVA: "~",
    Cell.KEY: "k",
    Cell.DOOR_LOCKED: "D",
    Cell.DOOR_OPEN: "/",
    Cell.BOX: "B",
    Cell.TARGET: "t",
    Cell.BOX_ON_TARGET: "X",
    Cell.COIN: "$",
    Cell.ICE: "_",
    Cell.TELEPORT_A: "T",
    Cell.TELEPORT_B: "U",
    Cell.CHECKPOINT_1: "1",
    Cell.CHECKPOINT_2: "2",
    Cell.CHECKPOINT_3: "3",
    Cell.CRACKED: "%",
    Cell.UNSEEN: " ",
    Cell.AGENT_N: "^",
    Cell.AGENT_E: ">",
    Cell.AGENT_S: "v",
    Cell.AGENT_W: "<",
    Cell.PAD: " ",
}
CHAR_TO_CELL = {c: s for s, c in CHARS.items() if s < NUM_CELL_TYPES}

# RGB colours for pixel observations and PNG rendering.
COLORS = {
    Cell.EMPTY: (30, 30, 30),
    Cell.WALL: (110, 110, 110),
    Cell.GOAL: (40, 200, 70),
    Cell.LAVA: (230, 90, 20),
    Cell.KEY: (240, 210, 40),
    Cell.DOOR_LOCKED: (170, 120, 40),
    Cell.DOOR_OPEN: (90, 65, 25),
    Cell.BOX: (150, 90, 200),
    Cell.TARGET: (90, 50, 110),
    Cell.BOX_ON_TARGET: (210, 140, 255),
    Cell.COIN: (255, 240, 120),
    Cell.ICE: (170, 220, 250),
    Cell.TELEPORT_A: (40, 120, 255),
    Cell.TELEPORT_B: (20, 70, 170),
    Cell.CHECKPOINT_1: (255, 120, 160),
    Cell.CHECKPOINT_2: (220, 80, 130),
    Cell.CHECKPOINT_3: (180, 40, 100),
    Cell.CRACKED: (95, 75, 60),
    Cell.UNSEEN: (0, 0, 0),
    Cell.AGENT_N: (230, 30, 30),
    Cell.AGENT_E: (230, 30, 30),
    Cell.AGENT_S: (230, 30, 30),
    Cell.AGENT_W: (230, 30, 30),
    Cell.PAD: (0, 0, 0),
}

# Directions: 0 east, 1 south, 2 west, 3 north (MiniGrid's convention). (row, col) deltas.
DIR_DELTAS = ((0, 1), (1, 0), (0, -1), (-1, 0))
AGENT_SYMBOL_BY_DIR = (Cell.AGENT_E, Cell.AGENT_S, Cell.AGENT_W, Cell.AGENT_N)


class CELL:
    """Plain-int aliases of ``Cell`` for tensor code: ``torch.compile`` mistraces comparisons of
    tensors with IntEnum members (``x == Cell.KEY`` became a constant), so hot paths use these."""


for _member in Cell:
    setattr(CELL, _member.name, int(_member))
