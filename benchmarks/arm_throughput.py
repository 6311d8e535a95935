"""Arm engine throughput: steps per second of the batched arm engine.

Prints one JSON line per setting (machine-readable), e.g.::

    python benchmarks/arm_throughput.py --num-envs 1,64,4096 --device cpu --json
    python benchmarks/arm_throughput.py --interface joint_velocity --num-envs 4096
    python benchmarks/arm_throughput.py --mixed --num-envs 4096   # every task x arm2..arm7
    python benchmarks/arm_throughput.py --num-envs 4096 --compile  # torch.compile the step

Actions are uniform random (drawn on the device each step); the headline setting is the
end-effector interface (damped least-squares IK every step). Every step computes the true
final observation of ended episodes and resets them (same-step autoreset). Each setting is
timed ``--repeats`` times; ``steps_per_s`` is the median (shared machines are noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from autoworld.envs.arm.embodiment import N_MAX
from autoworld.envs.arm.engine import ArmEngine
from autoworld.envs.arm.spec import TASKS, arm_world


def machine() -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "load_avg_1m": round(os.getloadavg()[0], 2)}  # shared machines: say how busy
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def time_setting(engine: ArmEngine, steps: int, warmup: int) -> float:
    """Steps per second (env steps, all envs) of ``steps`` random-action engine steps."""
    B, dev = engine.num_envs, engine.device
    cols = 3 if engine.interface == "ee_delta" else N_MAX
    g = torch.Generator(device=dev).manual_seed(0)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(warmup):
            engine.step(torch.rand(B, cols, device=dev, generator=g) * 2 - 1)
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            engine.step(torch.rand(B, cols, device=dev, generator=g) * 2 - 1)
        sync()
        dt = time.perf_counter() - t0
    return B * steps / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-envs", default="1,64,4096", help="Comma-separated batch sizes.")
    ap.add_argument("--device", default="cpu", help="cpu or cuda.")
    ap.add_argument("--interface", default="ee_delta", choices=("ee_delta", "joint_velocity"))
    ap.add_argument("--task", default="reach", choices=TASKS, help="Task of the single world.")
    ap.add_argument("--arm", default="arm7", help="Embodiment of the single world.")
    ap.add_argument("--mixed", action="store_true",
                    help="Every task on arm2..arm7 in one batch instead of one world.")
    ap.add_argument("--steps", type=int, default=0,
                    help="Timed steps per repeat (default: about 2M env steps, 20..2000).")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default).")
    ap.add_argument("--compile", action="store_true",
                    help="Run the engine step through torch.compile (first steps compile).")
    ap.add_argument("--json", action="store_true", help="Print only the JSON lines.")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mixed:
        worlds = [arm_world(t, f"arm{n}", interface=args.interface)
                  for t in TASKS for n in range(2, N_MAX + 1)]
        label = f"mixed:{len(worlds)}"
    else:
        worlds = [arm_world(args.task, args.arm, interface=args.interface)]
        label = worlds[0].name
    for n in (int(x) for x in args.num_envs.split(",")):
        engine = ArmEngine(worlds, num_envs=n, device=args.device, seed=0,
                           compile=args.compile)
        steps = args.steps or max(20, min(2000, 2_000_000 // n))
        t0 = time.perf_counter()
        time_setting(engine, 1, warmup=5 if args.compile else 0)  # compiles if asked
        warm_s = time.perf_counter() - t0
        runs = [time_setting(engine, steps, warmup=3) for _ in range(args.repeats)]
        row = {"bench": "arm_throughput", "worlds": label, "interface": args.interface,
               "num_envs": n, "device": args.device, "steps": steps,
               "compile": args.compile, "warmup_s": round(warm_s, 1),
               "steps_per_s": round(statistics.median(runs)),
               "steps_per_s_best": round(max(runs)), "machine": machine()}
        print(json.dumps(row))
        if not args.json:
            print(f"  {label} {args.interface} B={n}: {row['steps_per_s']:,} steps/s "
                  f"(best {row['steps_per_s_best']:,})")


if __name__ == "__main__":
    main()
