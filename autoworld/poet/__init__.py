"""POET: co-evolution of worlds and agents (``autoworld evolve``).

- ``config``: ``PoetConfig``, every constant of the loop as a documented option;
- ``decisions``: the pure rules (minimal criterion, PATA-EC, admission, retirement, transfer,
  ANNECS);
- ``scores``: the cached agent x world score matrix;
- ``policy`` / ``rollout`` / ``ppo_step``: the agent network and the batched ES / PPO / scoring
  work over heterogeneous worlds;
- ``executor``: local (one batched call) and Ray backends behind one interface;
- ``loop``: ``PoetRun``, the loop with atomic checkpoints and exact resume;
- ``report``: plots and GIFs of a run directory.

Example:
    >>> from autoworld.poet import PoetConfig
    >>> PoetConfig().max_active, PoetConfig.quick().population
    (20, 32)
"""

from __future__ import annotations

from typing import Any

__all__ = ["CheckpointError", "PoetConfig", "PoetError", "PoetRun", "build_report"]


def __getattr__(name: str) -> Any:  # lazy: importing the package stays cheap
    if name in ("PoetConfig", "PoetError", "CheckpointError"):
        from autoworld.poet import config

        return getattr(config, name)
    if name == "PoetRun":
        from autoworld.poet.loop import PoetRun

        return PoetRun
    if name == "build_report":
        from autoworld.poet.report import build_report

        return build_report
    raise AttributeError(f"module 'autoworld.poet' has no attribute {name!r}")
