"""Embodiment experiments of the arm family (E1-E3 of the action-rate debiasing study).

- E1 (``e1``): task diversity vs demonstrations per task at equal dataset size.
- E2 (``e2``): multi- vs single-embodiment pretraining, transfer to held-out arms.
- E3 (``e3``): action-rate debiasing in pretraining and fine-tuning, data equivalence, and the
  left/right check.

``run_experiment("E1", "quick", seeds=2, out=Path("runs/e1"))`` runs one; the command line is
``autoworld embodiment E1 --quick --out runs/e1``. See docs/embodiment.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from autoworld.embodiment.common import SCALES, ExperimentError, Scale, get_scale

EXPERIMENTS = ("E1", "E2", "E3")


def run_experiment(name: str, scale: str | Scale = "full", seeds: int | None = None,
                   out: str | Path = "runs/embodiment", device: str = "cpu",
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run experiment ``name`` (E1, E2 or E3) at ``scale`` (full, quick, tiny) over ``seeds``
    seeds (default: the scale's); returns the ``results.json`` payload."""
    key = name.upper()
    if key not in EXPERIMENTS:
        raise ExperimentError(f"experiment: unknown experiment {name!r}; use one of "
                              f"{', '.join(EXPERIMENTS)}")
    sc = get_scale(scale) if isinstance(scale, str) else scale
    n = sc.seeds if seeds is None else int(seeds)
    if n < 1:
        raise ExperimentError(f"seeds: need at least 1 seed (got {n})")
    if key == "E1":
        from autoworld.embodiment.e1 import run
    elif key == "E2":
        from autoworld.embodiment.e2 import run
    else:
        from autoworld.embodiment.e3 import run
    return run(sc, n, Path(out), device=device, progress=progress)


__all__ = ["EXPERIMENTS", "SCALES", "ExperimentError", "Scale", "get_scale", "run_experiment"]
