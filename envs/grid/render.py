"""Render grid envs and levels: ASCII text (``symbols.CHARS``) and RGB images (``tiles``).

Rendering shows one env's whole world top-down with the agent drawn as an arrow, whatever the
agent itself observes. It reads one env's row of the batched state, so it is a host-side tool for
people (``render_mode``, ``autoworld show``), never part of a step.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autoworld.atomic import atomic_write
from autoworld.envs.grid.symbols import AGENT_SYMBOL_BY_DIR, CHARS, NUM_SYMBOLS, Cell
from autoworld.envs.grid.tiles import tile_atlas
from autoworld.errors import EngineError

if TYPE_CHECKING:
    from autoworld.envs.grid.engine import GridEngine, GridState
    from autoworld.envs.grid.level import Level

# symbol code -> character, as an array for vectorised lookups
_CHAR_TABLE = np.array([CHARS[Cell(s)] for s in range(NUM_SYMBOLS)])


def world_symbols(engine: GridEngine, env_index: int = 0,
                  state: GridState | None = None) -> np.ndarray:
    """The symbol codes of one env's world with the agent drawn as an arrow symbol.

    Args:
        engine: the engine that owns the env (it knows the frame and each env's world size).
        env_index: which env of the batch.
        state: a state of ``engine`` to draw instead of ``engine.state`` (e.g. a terminal state).

    Returns:
        (h, w) uint8 codes, cropped to that env's world size.

    Example:
        >>> from autoworld.envs.catalogue import load_world
        >>> from autoworld.envs.grid.engine import GridEngine
        >>> eng = GridEngine(load_world("DoorKey-8x8"), num_envs=2, seed=0)
        >>> world_symbols(eng, 1).shape
        (8, 8)
    """
    if hasattr(engine, "locate") and state is None:  # a bucketed batch: draw from the bucket
        engine, env_index = engine.locate(env_index)
    if not hasattr(engine, "num_envs") or not hasattr(engine, "state"):
        raise EngineError(
            f"render needs the GridEngine (it holds the frame geometry), got "
            f"{type(engine).__name__}; to draw another state pass it as state=..."
        )
    if not 0 <= env_index < engine.num_envs:
        raise EngineError(f"env_index {env_index} is outside the batch of {engine.num_envs} envs")
    s = engine.state if state is None else state
    H, W = engine.H, engine.W
    h, w = int(engine.height[env_index]), int(engine.width[env_index])
    grid = s.grid[env_index, : H * W].detach().cpu().numpy().reshape(H, W)[:h, :w].copy()
    pos, direction = int(s.pos[env_index]), int(s.dir[env_index])
    r, c = divmod(pos, W)
    if r < h and c < w:
        grid[r, c] = int(AGENT_SYMBOL_BY_DIR[direction])
    return grid


def symbols_to_ascii(codes: np.ndarray) -> str:
    """Text of a (h, w) array of symbol codes: one line per row, no trailing newline."""
    chars = _CHAR_TABLE[np.asarray(codes, dtype=np.int64)]
    return "\n".join("".join(row) for row in chars)


def symbols_to_rgb(codes: np.ndarray, tile: int = 16) -> np.ndarray:
    """(h*tile, w*tile, 3) uint8 image of a (h, w) array of symbol codes (``tiles.tile_atlas``)."""
    if tile < 1:
        raise EngineError(f"tile must be >= 1 pixel (got {tile})")
    codes = np.asarray(codes, dtype=np.int64)
    h, w = codes.shape
    tiles = tile_atlas(tile)[codes]  # (h, w, tile, tile, 3)
    return np.ascontiguousarray(tiles.transpose(0, 2, 1, 3, 4).reshape(h * tile, w * tile, 3))


def render_ascii(engine: GridEngine, env_index: int = 0, state: GridState | None = None) -> str:
    """One env's world as text, the agent drawn as ``^ > v <`` (see ``symbols.CHARS``).

    Args:
        engine: the engine that owns the env.
        env_index: which env of the batch.
        state: a state of ``engine`` to draw instead of ``engine.state``.

    Example:
        >>> from autoworld.envs.catalogue import load_world
        >>> from autoworld.envs.grid.engine import GridEngine
        >>> eng = GridEngine(load_world("DoorKey-8x8"), seed=0)
        >>> text = render_ascii(eng)
        >>> len(text.splitlines()), text.splitlines()[0]
        (8, '########')
    """
    return symbols_to_ascii(world_symbols(engine, env_index, state))


def render_rgb(engine: GridEngine, env_index: int = 0, tile: int = 16,
               state: GridState | None = None) -> np.ndarray:
    """One env's world as an (h*tile, w*tile, 3) uint8 image, the agent an arrow in its cell.

    Example:
        >>> from autoworld.envs.catalogue import load_world
        >>> from autoworld.envs.grid.engine import GridEngine
        >>> eng = GridEngine(load_world("DoorKey-8x8"), seed=0)
        >>> render_rgb(eng, tile=4).shape
        (32, 32, 3)
    """
    return symbols_to_rgb(world_symbols(engine, env_index, state), tile)


def level_symbols(level: Level) -> np.ndarray:
    """(h, w) uint8 symbol codes of a level's start state with the agent drawn as an arrow."""
    codes = np.asarray(level.grid, dtype=np.uint8).copy()
    r, c = level.agent_pos
    codes[r, c] = int(AGENT_SYMBOL_BY_DIR[level.agent_dir])
    return codes


def render_level_ascii(level: Level) -> str:
    """A level bank entry as text with the agent arrow at its start cell.

    Example:
        >>> from autoworld.envs.grid.level import Level
        >>> print(render_level_ascii(Level.from_ascii(["#####", "#..G#", "#####"], (1, 1), 0)))
        #####
        #>.G#
        #####
    """
    return symbols_to_ascii(level_symbols(level))


def save_png(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an (H, W, 3) uint8 image as a PNG atomically (temp file, fsync, rename).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.png"
        >>> out = save_png(np.zeros((4, 4, 3), np.uint8), path)
        >>> out.suffix
        '.png'
    """
    from PIL import Image

    img = np.asarray(array)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise EngineError(f"save_png needs an (H, W, 3) uint8 array, got {img.dtype} {img.shape}")
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    p = atomic_write(path, buf.getvalue())
    return p
