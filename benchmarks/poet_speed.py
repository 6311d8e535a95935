"""POET speed: one ES step of P pairs batched in one engine call vs the same pairs optimized one
after another on the same device, and optionally the wall time of a whole run.

Prints JSON lines:

- ``{"bench": "batched", ...}``: iterations/s and env-steps/s of the batched executor;
- ``{"bench": "serial", ...}``: the same jobs, one engine call per pair;
- ``{"bench": "ratio", "speedup": ...}`` (target >= 5);
- with ``--run-iterations N``: ``{"bench": "run", ...}`` the wall time of an N-iteration POET run
  with ``--pairs`` active pairs at most (reproduction and transfers included).

Example (the issue's figures):
    python benchmarks/poet_speed.py --pairs 10 --population 512
    python benchmarks/poet_speed.py --pairs 10 --run-iterations 200
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import torch


def _pairs(P: int, population: int, root: str):
    """P pairs on a POET-like population: ``root`` and a chain of its mutants."""
    from autoworld.envs.catalogue import load_world
    from autoworld.generator.mutate import mutate
    from autoworld.poet.policy import PoetPolicy
    from autoworld.poet.rollout import EsJob, WorldEntry

    policy = PoetPolicy(11, 2, 32)
    specs = [load_world(root)]
    seed = 0
    while len(specs) < P:
        seed += 1
        specs.append(mutate(specs[int(seed % len(specs))], seed, strength=0.2))
    worlds = {f"w{i}": WorldEntry(s, [], []) for i, s in enumerate(specs)}
    jobs = []
    for i in range(P):
        th = policy.init(i)
        z = torch.zeros_like(th)
        jobs.append(EsJob(f"a{i}", f"w{i}", th, z, z.clone(), 0, 0.1, 0.01, i))
    return policy, worlds, jobs


def _measure(executor, worlds, jobs, population: int, iterations: int) -> dict:
    executor.es_steps(worlds, jobs, population, 1, 0.01)  # warm-up: engines, banks
    steps0 = executor.env_steps
    start = time.perf_counter()
    for _ in range(iterations):
        executor.es_steps(worlds, jobs, population, 1, 0.01)
    wall = time.perf_counter() - start
    return {"iterations_per_s": iterations / wall, "seconds_per_iteration": wall / iterations,
            "env_steps_per_s": (executor.env_steps - steps0) / wall}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--population", type=int, default=512)
    ap.add_argument("--iterations", type=int, default=3, help="ES steps timed per executor")
    ap.add_argument("--world", default="Empty-6x6", help="root of the mutant population")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip-serial", action="store_true")
    ap.add_argument("--bucketing", default="auto", choices=("auto", "components", "none"),
                    help="how the batched engine groups worlds (see envs/grid/bucketed.py)")
    ap.add_argument("--run-iterations", type=int, default=0,
                    help="also time a POET run of this many iterations (POET preset)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from autoworld.poet.executor import LocalExecutor, SerialExecutor

    machine = {"device": args.device, "threads": torch.get_num_threads(),
               "cpu": platform.processor() or platform.machine(),
               "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None}
    policy, worlds, jobs = _pairs(args.pairs, args.population, args.world)
    common = {"pairs": args.pairs, "population": args.population, "world": args.world,
              "bucketing": args.bucketing,
              "buckets": len({tuple(sorted({c.kind for f in (w.spec.transition,
                              w.spec.observation, w.spec.reward) for c in f}))
                              for w in worlds.values()}), **machine}
    batched = _measure(LocalExecutor(policy, args.device, args.bucketing), worlds, jobs,
                       args.population, args.iterations)
    print(json.dumps({"bench": "batched", **common, **batched}), flush=True)
    if not args.skip_serial:
        serial = _measure(SerialExecutor(policy, args.device), worlds, jobs, args.population,
                          args.iterations)
        print(json.dumps({"bench": "serial", **common, **serial}), flush=True)
        print(json.dumps({"bench": "ratio", **common, "speedup":
                          serial["seconds_per_iteration"] / batched["seconds_per_iteration"]}),
              flush=True)
    if args.run_iterations:
        from autoworld.poet.config import PoetConfig
        from autoworld.poet.loop import PoetRun

        cfg = PoetConfig(iterations=args.run_iterations, max_active=args.pairs,
                         population=args.population, device=args.device, gifs=False,
                         tensorboard=False)
        with tempfile.TemporaryDirectory() as d:
            start = time.perf_counter()
            run = PoetRun(cfg, d)
            run.run()
            wall = time.perf_counter() - start
            line = {"bench": "run", **common, "iterations": args.run_iterations,
                    "wall_s": wall, "annecs": run.annecs.value,
                    "active_pairs": len(run.pairs), "env_steps": run.counters["env_steps"]}
            run.close()
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
