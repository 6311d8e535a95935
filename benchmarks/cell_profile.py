"""Where one leaderboard cell spends its time: a bench cell (method x world x seed x steps) run
in this process under cProfile, its wall time split into phases.

Prints one JSON line: the cell, its wall time, its score, and per phase the cumulative seconds
and share of the wall time (phases nest: ``engine_step`` is part of ``ppo_iterate``, say, so
shares do not add up to 1), then the top functions by own time.

    python benchmarks/cell_profile.py --method ppo --world DoorKey-8x8 --steps 200000
    python benchmarks/cell_profile.py --method bc+ppo --world WindyCoins-9x9 --steps 1000000 \\
        --device cuda --num-envs 1024

On CUDA the time of a kernel shows up where the host waits for it (a ``.item()``, a copy to the
host), so the split tells host-side overhead from waiting only roughly.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import sys
import time

# (phase, file suffix, function name): cumulative time of the function's outermost calls
PHASES = (
    ("evaluate", "learners/evaluation.py", "evaluate"),
    ("oracle_plans", "learners/bc.py", "oracle_plans"),
    ("demonstrations", "learners/bc.py", "collect_demonstrations"),
    ("clone", "learners/bc.py", "clone"),
    ("ppo_iterate", "learners/ppo.py", "iterate"),
    ("population_eval", "learners/soe.py", "__call__"),
    ("engine_step", "envs/grid/engine.py", "step"),
    ("engine_build", "envs/grid/engine.py", "__init__"),
    ("level_banks", "envs/grid/levels.py", "bank"),
    ("backward", "~", "<method 'run_backward' of 'torch._C._EngineBase' objects>"),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="ppo")
    ap.add_argument("--world", default="DoorKey-8x8")
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--num-envs", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--top", type=int, default=12, help="Functions listed by own time.")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    import torch

    from autoworld.leaderboard.bench import make_train_runner
    from autoworld.leaderboard.store import CellKey

    if args.threads:
        torch.set_num_threads(args.threads)
    imports = time.perf_counter() - t0
    runner = make_train_runner(device=args.device, num_envs=args.num_envs)
    cell = CellKey(method=args.method, world=args.world, seed=args.seed, steps=args.steps)
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    outcome = runner(cell)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    prof.disable()
    wall = time.perf_counter() - start

    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, callers)
    phases = {}
    for phase, suffix, name in PHASES:
        cum = 0.0
        for (file, _line, func), (_cc, _nc, _tt, ct, callers) in stats.items():
            if func != name or not file.replace("\\", "/").endswith(suffix):
                continue
            # outermost calls only: callers that are not this same function
            cum += ct if not any(c[2] == name and c[0] == file for c in callers) else 0.0
        if cum:
            phases[phase] = {"s": round(cum, 3), "share": round(cum / wall, 3)}
    top = sorted(stats.items(), key=lambda kv: -kv[1][2])[:args.top]
    print(json.dumps({
        "bench": "cell_profile", "method": args.method, "world": args.world,
        "steps": args.steps, "seed": args.seed, "device": args.device,
        "num_envs": args.num_envs, "threads": torch.get_num_threads(),
        "score_opt": outcome.score_opt, "initial_score": outcome.initial_score,
        "wall_s": round(wall, 3), "imports_s": round(imports, 3), "phases": phases,
        "top_own_time": [{"function": f"{os.path.basename(k[0])}:{k[2]}", "s": round(v[2], 3),
                          "calls": v[1]} for k, v in top],
        "cpu": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        "torch": torch.__version__,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
