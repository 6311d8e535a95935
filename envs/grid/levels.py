"""Level banks: seeded, solvable levels per world and split."""

from __future__ import annotations

from autoworld.envs.grid.layouts import draw_candidate
from autoworld.envs.grid.level import Level, LevelBank
from autoworld.errors import LevelError
from autoworld.rng import derive_seed

SPLITS = ("train", "validation", "test")
DEFAULT_SIZES = {"train": 512, "validation": 5, "test": 10}
MAX_TRIES = 50


def level_seed(spec, split: str, index: int, attempt: int = 0) -> int:
    """Seed of level ``index`` of ``split``: disjoint streams per split, stable across runs."""
    return derive_seed(0, spec.content_hash, split, index, attempt) & 0x7FFFFFFF


def generate_level(spec, split: str, index: int) -> Level:
    for attempt in range(MAX_TRIES):
        level = draw_candidate(spec, level_seed(spec, split, index, attempt))
        return level
    raise LevelError(f"{spec.name}: no valid level after {MAX_TRIES} tries")


def bank(spec, split: str = "train", size: int | None = None) -> LevelBank:
    """The ``split`` bank of ``spec`` with ``size`` levels (default per split)."""
    if split not in SPLITS:
        raise LevelError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    n = DEFAULT_SIZES[split] if size is None else size
    return LevelBank.from_levels([generate_level(spec, split, i) for i in range(n)])
