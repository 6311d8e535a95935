"""Accepted worlds per minute of the procedural backend, each with K validated levels.

Every world is validated with exact oracles on its 10 test + 5 validation levels (``--levels
15``). Worlds are split over ``--workers`` processes (one torch thread each); novelty is checked
against the catalogue and the worlds of the same worker. Prints one JSON object.

    python benchmarks/generate_rate.py --worlds 40 --workers 2 --levels 15
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor

THEMES = ["an icy maze", "foggy rooms with keys and doors", "lava field", "coins in the dark",
          "sokoban warehouse", "inverted lava", "deceptive windy treasure", "teleport maze",
          "mirror world", "a dungeon", "checkpoint race", "crumbling bridge over fire",
          "noisy text maze", "robot in a storm", "open meadow", "vault of gold"]


def _work(args: tuple[list[str], int, int, int, int | None]) -> dict:
    import torch

    torch.set_num_threads(1)
    from autoworld.generator.generate import Generator, GeneratorConfig
    from autoworld.generator.procedural import ProceduralBackend

    themes, n, seed, levels, budget = args
    # a theme met again gets another seed (the same theme and seed would be the same world, a
    # duplicate that the novelty stage rejects): one generation call per pass over the themes
    config = GeneratorConfig() if budget == -1 else GeneratorConfig(state_budget=budget)
    gen = Generator(ProceduralBackend(), config)
    merged: dict = {"proposals": 0, "accepted": 0, "requested": 0, "first_try": 0, "stages": []}
    for rnd, at in enumerate(range(0, len(themes), len(THEMES))):
        s = gen.generate(themes[at:at + len(THEMES)], n=n, seed=seed + 100 * rnd,
                         levels=levels).summary()
        for key in ("proposals", "accepted", "requested", "first_try"):
            merged[key] += s[key]
        if not merged["stages"]:
            merged["stages"] = [{**st, "attempted": 0, "passed": 0} for st in s["stages"]]
        for acc, st in zip(merged["stages"], s["stages"], strict=True):
            acc["attempted"] += st["attempted"]
            acc["passed"] += st["passed"]
    return merged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", type=int, default=32, help="Worlds requested in all.")
    ap.add_argument("--workers", type=int, default=2, help="Worker processes.")
    ap.add_argument("--levels", type=int, default=15, help="Levels validated per world.")
    ap.add_argument("--seed", type=int, default=0, help="Run seed.")
    ap.add_argument("--state-budget", type=int, default=-1,
                    help="Oracle state budget per world (-1: the generator's default; 0: none).")
    a = ap.parse_args()
    per_worker = max(1, a.worlds // a.workers)
    jobs = []
    for w in range(a.workers):
        themes = [THEMES[(w + i) % len(THEMES)] for i in range(per_worker)]
        jobs.append((themes, 1, a.seed + 1000 * w, a.levels,
                     None if a.state_budget == 0 else a.state_budget))
    start = time.perf_counter()
    with ProcessPoolExecutor(a.workers) as pool:
        summaries = list(pool.map(_work, jobs))
    seconds = time.perf_counter() - start
    proposals = sum(s["proposals"] for s in summaries)
    accepted = sum(s["accepted"] for s in summaries)
    requested = sum(s["requested"] for s in summaries)
    stages: dict[str, list[int]] = {}
    for s in summaries:
        for st in s["stages"]:
            acc = stages.setdefault(st["name"], [0, 0])
            acc[0] += st["attempted"]
            acc[1] += st["passed"]
    print(json.dumps({
        "backend": "procedural", "workers": a.workers, "levels_per_world": a.levels,
        "state_budget": a.state_budget,
        "requested": requested, "proposals": proposals, "accepted": accepted,
        "first_try_rate": round(sum(s["first_try"] for s in summaries) / requested, 4),
        "all_stage_pass_rate_per_proposal": round(stages["novelty"][1] / proposals, 4),
        "stages": {k: {"attempted": v[0], "passed": v[1],
                       "rate": round(v[1] / v[0], 4) if v[0] else 0.0}
                   for k, v in stages.items()},
        "seconds": round(seconds, 2),
        "accepted_per_minute": round(60 * accepted / seconds, 2),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
    }, indent=2))


if __name__ == "__main__":
    main()
