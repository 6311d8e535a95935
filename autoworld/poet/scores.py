"""One cached agent x world score matrix, shared by the minimal criterion, PATA-EC, transfers
and ANNECS.

An entry is the normalized score of one agent on one world, stamped with the agent's version
(bumped whenever its weights change). Archived agents never change, so their entries stay valid
forever; active agents' entries are refreshed only when a decision needs them (``missing``
lists what to evaluate). The matrix is plain data and goes into every checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class ScoreMatrix:
    """Normalized scores keyed by (agent id, world id), each valid for one agent version."""

    def __init__(self) -> None:
        self.version: dict[str, int] = {}
        self._entries: dict[tuple[str, str], tuple[float, int]] = {}

    def bump(self, agent: str) -> None:
        """The agent's weights changed: its cached scores are stale."""
        self.version[agent] = self.version.get(agent, 0) + 1

    def set(self, agent: str, world: str, score: float) -> None:
        self.version.setdefault(agent, 0)
        self._entries[(agent, world)] = (float(score), self.version[agent])

    def get(self, agent: str, world: str) -> float | None:
        """The cached score, or None when absent or stale."""
        hit = self._entries.get((agent, world))
        if hit is None or hit[1] != self.version.get(agent, 0):
            return None
        return hit[0]

    def missing(self, agents: Iterable[str], worlds: Iterable[str]) -> list[tuple[str, str]]:
        """The (agent, world) pairs without a valid entry, row-major."""
        worlds = list(worlds)
        return [(a, w) for a in agents for w in worlds if self.get(a, w) is None]

    def matrix(self, agents: list[str], worlds: list[str]) -> np.ndarray:
        """(A, W) float64 of valid entries (NaN where missing)."""
        out = np.full((len(agents), len(worlds)), np.nan)
        for i, a in enumerate(agents):
            for j, w in enumerate(worlds):
                v = self.get(a, w)
                if v is not None:
                    out[i, j] = v
        return out

    def drop_world(self, world: str) -> None:
        """Forget every entry of ``world`` (a rejected child)."""
        self._entries = {k: v for k, v in self._entries.items() if k[1] != world}

    def __len__(self) -> int:
        return len(self._entries)

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict:
        return {"version": dict(sorted(self.version.items())),
                "entries": [[a, w, s, v] for (a, w), (s, v) in sorted(self._entries.items())]}

    @classmethod
    def from_state(cls, d: dict) -> ScoreMatrix:
        m = cls()
        m.version = {k: int(v) for k, v in d["version"].items()}
        m._entries = {(a, w): (float(s), int(v)) for a, w, s, v in d["entries"]}
        return m
