"""POET speed: one ES step of P pairs batched in one engine call vs the same pairs optimized one
after another on the same device, and optionally the wall time of a whole run.

Prints JSON lines:

- ``{"bench": "batched", ...}``: iterations/s and env-steps/s of the batched executor;
- ``{"bench": "serial", ...}``: the same jobs, one engine call per pair;
- ``{"bench": "ratio", "speedup": ...}`` (target >= 5);
- with ``--run-iterations N``: ``{"bench": "run", ...}`` the wall time of an N-iteration POET run
  (POET preset) with ``--pairs`` active pairs at most (reproduction and transfers included).
  With ``--full``, the run starts with ``--pairs`` pairs (the root world and validated mutants
  of it, each with a fresh agent), so every iteration optimizes and scores that many pairs;
  POET itself admits at most ``max_admitted`` child per ``reproduce_every`` iterations, so a run
  from one pair only reaches 10 pairs after ~225 iterations, and only if its agents reach the
  reproduction threshold.

Example (the issue's figures):
    python benchmarks/poet_speed.py --pairs 10 --population 512
    python benchmarks/poet_speed.py --pairs 10 --run-iterations 200 --full --skip-step
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

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


def _start_pairs(run, n: int) -> None:
    """Grow ``run`` (before its first iteration) to ``n`` pairs: validated mutants of its worlds,
    each with a fresh agent (they were not admitted by the minimal criterion, so they never
    count for ANNECS)."""
    from autoworld.errors import AutoworldError
    from autoworld.generator.mutate import mutate
    from autoworld.poet.worlds import validate_world

    seed = 0
    while len(run.pairs) < n:
        seed += 1
        parent = run.pairs[seed % len(run.pairs)].world
        try:
            spec = mutate(run.worlds[parent].spec, 1000 + seed, strength=0.2)
        except AutoworldError:
            continue
        if spec.content_hash in run.seen:
            continue
        run.seen.add(spec.content_hash)
        entry, _ = validate_world(spec, run.cfg)
        if entry is None:
            continue
        w = run._new_world_id()
        run.worlds[w] = entry
        run.lineage[w] = {"parent": parent, "iteration": 0, "name": spec.name}
        theta = run.policy.init(1000 + seed)
        run.pairs.append(run._pair(w, run._new_agent_id(), theta))


def _measure(executor, worlds, jobs, population: int, iterations: int) -> dict:
    executor.es_steps(worlds, jobs, population, 1, 0.01)  # warm-up: engines, banks
    steps0 = executor.env_steps
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(iterations):
        executor.es_steps(worlds, jobs, population, 1, 0.01)
    wall = time.perf_counter() - start
    # CPU seconds of this process: on a loaded machine, what the wall time would be on an idle
    # one with the same number of threads busy
    return {"iterations_per_s": iterations / wall, "seconds_per_iteration": wall / iterations,
            "cpu_s_per_iteration": (time.process_time() - cpu) / iterations,
            "env_steps_per_s": (executor.env_steps - steps0) / wall}


def _profile(executor, worlds, jobs, population: int, device: str) -> dict:
    """Where one ES step's time goes: wall time, the device's busy time (the sum of kernel
    times; on CPU, of the top-level ops), the number of kernels (or ops), and the ops that
    took most of it. Device busy much less than wall: the step is bound by launches and the
    host; about equal: by the device's work."""
    from torch.profiler import ProfilerActivity, profile

    executor.es_steps(worlds, jobs, population, 1, 0.01)  # warm-up, as in _measure
    acts = [ProfilerActivity.CPU]
    if device.startswith("cuda"):
        acts.append(ProfilerActivity.CUDA)
        torch.cuda.synchronize()
    with profile(activities=acts) as prof:
        start = time.perf_counter()
        executor.es_steps(worlds, jobs, population, 1, 0.01)
        wall = time.perf_counter() - start
    events = prof.events()
    if device.startswith("cuda"):
        kernels = [e for e in events if e.device_type.name == "CUDA"]
        busy = sum(e.device_time for e in kernels) / 1e6
        launches = len(kernels)
        by = "self_cuda_time_total"
    else:
        kernels = [e for e in events if e.cpu_parent is None]
        busy = sum(e.cpu_time_total for e in kernels) / 1e6
        launches = sum(1 for e in events if e.name.startswith("aten::"))
        by = "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=by, row_limit=12)
    return {"wall_s": wall, "device_busy_s": busy, "kernels": launches, "top": table}


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
    ap.add_argument("--cuda-graph", action="store_true",
                    help="engines replay recorded CUDA graphs (CUDA only; both executors)")
    ap.add_argument("--profile", action="store_true",
                    help="profile one ES step of each executor: device busy time vs wall, "
                    "kernel count, top ops (printed after the JSON line)")
    ap.add_argument("--run-iterations", type=int, default=0,
                    help="also time a POET run of this many iterations (POET preset)")
    ap.add_argument("--run-dir", default="",
                    help="keep the timed run in this folder (default: a temporary one)")
    ap.add_argument("--resume", action="store_true",
                    help="continue the timed run in --run-dir (a new one if it holds none)")
    ap.add_argument("--time-limit", type=float, default=0.0,
                    help="stop the timed run before this many seconds (resume it later)")
    ap.add_argument("--full", action="store_true",
                    help="the timed run starts with --pairs pairs instead of one")
    ap.add_argument("--skip-step", action="store_true",
                    help="time only the run (no single-step batched/serial comparison)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from autoworld.poet.executor import LocalExecutor, SerialExecutor

    machine = {"device": args.device, "threads": torch.get_num_threads(),
               "cpu": platform.processor() or platform.machine(),
               "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None}
    policy, worlds, jobs = _pairs(args.pairs, args.population, args.world)
    common = {"pairs": args.pairs, "population": args.population, "world": args.world,
              "bucketing": args.bucketing, "cuda_graph": args.cuda_graph,
              "buckets": len({tuple(sorted({c.kind for f in (w.spec.transition,
                              w.spec.observation, w.spec.reward) for c in f}))
                              for w in worlds.values()}), **machine}
    if not args.skip_step:
        batched = _measure(LocalExecutor(policy, args.device, args.bucketing, args.cuda_graph),
                           worlds, jobs, args.population, args.iterations)
        print(json.dumps({"bench": "batched", **common, **batched}), flush=True)
    if not args.skip_serial and not args.skip_step:
        serial = _measure(SerialExecutor(policy, args.device, args.bucketing, args.cuda_graph),
                          worlds, jobs, args.population, args.iterations)
        print(json.dumps({"bench": "serial", **common, **serial}), flush=True)
        print(json.dumps({"bench": "ratio", **common, "speedup":
                          serial["seconds_per_iteration"] / batched["seconds_per_iteration"]}),
              flush=True)
    if args.profile:
        for name, cls in (("batched", LocalExecutor), ("serial", SerialExecutor)):
            prof = _profile(cls(policy, args.device, args.bucketing, args.cuda_graph), worlds,
                            jobs, args.population, args.device)
            top = prof.pop("top")
            print(json.dumps({"bench": f"profile_{name}", **common, **prof}), flush=True)
            print(top, flush=True)
    if args.run_iterations:
        if args.run_dir:
            Path(args.run_dir).mkdir(parents=True, exist_ok=True)
            print(json.dumps(_timed_run(args, common, args.run_dir)), flush=True)
        else:
            with tempfile.TemporaryDirectory() as d:
                print(json.dumps(_timed_run(args, common, d)), flush=True)


def _timed_run(args, common: dict, d: str) -> dict:
    """One call of the timed POET run in ``d``: a new run, or with ``--resume`` the run there
    continued; with ``--time-limit`` it stops after the iteration past which the slowest
    iteration so far would overrun the limit (the run resumes exactly from its checkpoint).
    Every call's wall time is appended to ``d/bench_calls.jsonl``; the line reports this call
    and the sum over the calls (the run's measured time once it is complete)."""
    from autoworld.poet.config import PoetConfig
    from autoworld.poet.loop import PoetRun

    root = Path(d)
    resume = args.resume and (root / "config.json").is_file()
    start, cpu = time.perf_counter(), time.process_time()
    if resume:
        cfg = PoetConfig.model_validate_json((root / "config.json").read_text())
        run = PoetRun(cfg, root, resume=True)
    else:
        cfg = PoetConfig(iterations=args.run_iterations, max_active=args.pairs,
                         population=args.population, device=args.device, gifs=False,
                         tensorboard=False, bucketing=args.bucketing,
                         cuda_graph=args.cuda_graph)
        run = PoetRun(cfg, root)
        if args.full:
            _start_pairs(run, args.pairs)
    setup = time.perf_counter() - start
    first = run.iteration
    lines: list[dict] = []
    while run.iteration < cfg.iterations:
        lines.append(run.step())
        slowest = max(m["wall_s"] for m in lines)
        if args.time_limit and time.perf_counter() - start + slowest > args.time_limit:
            break
    wall = time.perf_counter() - start
    calls_file = root / "bench_calls.jsonl"
    with calls_file.open("a") as f:
        f.write(json.dumps({"first_iteration": first, "iterations": len(lines),
                            "wall_s": wall, "setup_s": setup}) + "\n")
    calls = [json.loads(x) for x in calls_file.read_text().splitlines() if x.strip()]
    walls = [m["wall_s"] for m in lines] or [0.0]
    busy = [m["wall_s"] for m in lines if m["iteration"] > 0 and (
        m["iteration"] % cfg.reproduce_every == 0 or m["iteration"] % cfg.transfer_every == 0)]
    line = {"bench": "run", **common, "full": args.full, "resumed": resume,
            "iterations": cfg.iterations, "first_iteration": first,
            "iterations_this_call": len(lines), "complete": run.iteration >= cfg.iterations,
            "wall_s": wall, "setup_s": setup, "cpu_s": time.process_time() - cpu,
            "calls": len(calls), "wall_s_all_calls": sum(c["wall_s"] for c in calls),
            "mean_iteration_s": sum(walls) / len(walls), "max_iteration_s": max(walls),
            "reproduce_transfer_iterations_s": sum(busy),
            "mean_active_pairs": sum(m["active_pairs"] for m in lines) / max(1, len(lines)),
            "annecs": run.annecs.value, "admitted": run.counters["children_admitted"],
            "transfers": run.counters["transfers_accepted"],
            "active_pairs": len(run.pairs), "env_steps": run.counters["env_steps"]}
    run.close()
    return line

if __name__ == "__main__":
    main()
