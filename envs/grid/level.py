"""Levels: concrete start states of a grid world, and banks of them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from autoworld.envs.grid.symbols import CHAR_TO_CELL, CHARS, Cell


@dataclass(frozen=True)
class Level:
    """One start state: the grid (H, W) uint8 of ``Cell`` codes, the agent's (row, col) and
    direction (0 east, 1 south, 2 west, 3 north)."""

    grid: np.ndarray  # (H, W) uint8
    agent_pos: tuple[int, int]
    agent_dir: int
    seed: int = -1

    def to_ascii(self) -> list[str]:
        """Rows of characters (see ``symbols.CHARS``); the agent is not drawn."""
        return ["".join(CHARS[Cell(v)] for v in row) for row in self.grid]

    @classmethod
    def from_ascii(cls, rows: list[str], agent_pos: tuple[int, int], agent_dir: int,
                   seed: int = -1) -> Level:
        try:
            grid = np.array([[CHAR_TO_CELL[ch] for ch in row] for row in rows], dtype=np.uint8)
        except KeyError as exc:
            raise ValueError(f"unknown level character {exc.args[0]!r}; use one of "
                             f"{''.join(CHAR_TO_CELL)}") from None
        return cls(grid, (int(agent_pos[0]), int(agent_pos[1])), int(agent_dir), seed)

    def to_json(self) -> dict:
        return {"rows": self.to_ascii(), "agent": [*self.agent_pos], "dir": self.agent_dir,
                "seed": self.seed}

    @classmethod
    def from_json(cls, data: dict) -> Level:
        return cls.from_ascii(data["rows"], tuple(data["agent"]), data["dir"], data.get("seed", -1))


@dataclass
class LevelBank:
    """Levels of one world, stacked: grids (L, H, W) uint8, agent rows/cols/dirs (L,)."""

    grids: np.ndarray
    agent_pos: np.ndarray  # (L, 2) int64
    agent_dir: np.ndarray  # (L,) int64
    seeds: np.ndarray  # (L,) int64
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.grids.shape[0])

    @classmethod
    def from_levels(cls, levels: list[Level]) -> LevelBank:
        if not levels:
            raise ValueError("a level bank needs at least one level")
        return cls(
            grids=np.stack([lv.grid for lv in levels]).astype(np.uint8),
            agent_pos=np.array([lv.agent_pos for lv in levels], dtype=np.int64),
            agent_dir=np.array([lv.agent_dir for lv in levels], dtype=np.int64),
            seeds=np.array([lv.seed for lv in levels], dtype=np.int64),
        )

    def level(self, i: int) -> Level:
        return Level(self.grids[i].copy(), (int(self.agent_pos[i, 0]), int(self.agent_pos[i, 1])),
                     int(self.agent_dir[i]), int(self.seeds[i]))
