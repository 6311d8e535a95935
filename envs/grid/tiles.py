"""Tile images of the grid symbols, shared by pixel observations and PNG rendering."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from autoworld.envs.grid.symbols import AGENT_SYMBOL_BY_DIR, COLORS, NUM_SYMBOLS, Cell


@lru_cache(maxsize=8)
def tile_atlas(tile: int = 8) -> np.ndarray:
    """(NUM_SYMBOLS, tile, tile, 3) uint8: a flat colour per symbol with a dark 1-px grid line;
    agent symbols are a red triangle pointing in the agent's direction on floor colour."""
    atlas = np.zeros((NUM_SYMBOLS, tile, tile, 3), dtype=np.uint8)
    for sym in range(NUM_SYMBOLS):
        atlas[sym] = COLORS[Cell(sym)]
    yy, xx = np.mgrid[0:tile, 0:tile]
    u = (xx + 0.5) / tile  # 0..1 left to right
    v = (yy + 0.5) / tile  # 0..1 top to bottom
    tri = {
        0: (u > 0.15) & (np.abs(v - 0.5) < 0.5 * (u - 0.15)),  # east
        1: (v > 0.15) & (np.abs(u - 0.5) < 0.5 * (v - 0.15)),  # south
        2: (u < 0.85) & (np.abs(v - 0.5) < 0.5 * (0.85 - u)),  # west
        3: (v < 0.85) & (np.abs(u - 0.5) < 0.5 * (0.85 - v)),  # north
    }
    for d, sym in enumerate(AGENT_SYMBOL_BY_DIR):
        atlas[sym] = COLORS[Cell.EMPTY]
        atlas[sym][tri[d]] = COLORS[sym]
    if tile >= 4:
        atlas[:, 0, :, :] = atlas[:, 0, :, :] // 2
        atlas[:, :, 0, :] = atlas[:, :, 0, :] // 2
    return atlas
