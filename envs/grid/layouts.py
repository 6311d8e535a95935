"""Layout generators of the grid family: seed -> Level.

Each generator draws walls, doors, keys and layout-specific objects with a numpy Generator; the
shared ``place_objects`` then scatters the spec's ``objects`` on free floor and places the agent.
Generators only produce candidates: ``levels.generate_level`` checks solvability and retries.
"""

from __future__ import annotations

import numpy as np

from autoworld.envs.grid.level import Level
from autoworld.envs.grid.symbols import Cell
from autoworld.errors import LevelError


def _walled(h: int, w: int, border: bool = True) -> np.ndarray:
    g = np.zeros((h, w), dtype=np.uint8)
    if border:
        g[0, :] = g[-1, :] = g[:, 0] = g[:, -1] = Cell.WALL
    return g


def _free_cells(g: np.ndarray, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """(N, 2) coordinates of EMPTY cells, optionally within rows r0:r1, cols c0:c1."""
    mask = g == Cell.EMPTY
    if region is not None:
        r0, r1, c0, c1 = region
        sub = np.zeros_like(mask)
        sub[r0:r1, c0:c1] = True
        mask &= sub
    return np.argwhere(mask)


def _pick(rng: np.random.Generator, cells: np.ndarray) -> tuple[int, int]:
    if len(cells) == 0:
        raise LevelError("no free cell left to place an object; lower the object counts")
    r, c = cells[rng.integers(len(cells))]
    return int(r), int(c)


def doorkey(spec, rng: np.random.Generator):
    """MiniGrid DoorKey: returns (grid, agent region) with the agent confined to the left part."""
    h, w = spec.height, spec.width
    g = _walled(h, w)
    split = int(rng.integers(2, w - 2))  # wall column
    g[:, split] = Cell.WALL
    door_row = int(rng.integers(1, h - 2))
    g[door_row, split] = Cell.DOOR_LOCKED
    g[h - 2, w - 2] = Cell.GOAL
    agent_region = (0, h, 0, split)
    # MiniGrid places the agent first, then the key, both on the left of the wall.
    agent = _pick(rng, _free_cells(g, agent_region))
    g[agent] = 250  # reserve while placing the key
    key = _pick(rng, _free_cells(g, agent_region))
    g[key] = Cell.KEY
    g[agent] = Cell.EMPTY
    return g, agent


def open_room(spec, rng: np.random.Generator):
    lay = spec.layout
    g = _walled(spec.height, spec.width, lay.border)
    if lay.wall_density > 0:
        inner = np.argwhere(g == Cell.EMPTY)
        n = int(round(lay.wall_density * len(inner)))
        for i in rng.choice(len(inner), size=n, replace=False):
            g[tuple(inner[i])] = Cell.WALL
    return g, None


GENERATORS = {"doorkey": doorkey, "open_room": open_room}


def draw_candidate(spec, seed: int) -> Level:
    """One unchecked level of ``spec`` from ``seed`` (solvability is checked by the caller)."""
    rng = np.random.default_rng(seed)
    try:
        gen = GENERATORS[spec.layout.kind]
    except KeyError:
        raise LevelError(f"layout {spec.layout.kind!r} has no generator") from None
    grid, agent = gen(spec, rng)
    grid, agent = place_objects(spec, grid, agent, rng)
    return Level(grid, agent, int(rng.integers(4)), seed)


def place_objects(spec, g: np.ndarray, agent, rng: np.random.Generator):
    """Scatter ``spec.objects`` on free floor; place the agent if the layout did not."""
    obj = spec.objects
    if obj.goal and not (g == Cell.GOAL).any():
        g[_pick(rng, _free_cells(g))] = Cell.GOAL
    for _ in range(obj.coins):
        g[_pick(rng, _free_cells(g))] = Cell.COIN
    if agent is None:
        agent = _pick(rng, _free_cells(g))
    return g, agent
