"""Engine throughput: steps per second of the batched grid engine.

Prints one JSON line per setting (machine-readable), e.g.::

    python benchmarks/throughput.py --world DoorKey-8x8 --num-envs 1,64,4096 --device cpu --json
    python benchmarks/throughput.py --mixed 12 --num-envs 4096    # 12 worlds in one batch
    python benchmarks/throughput.py --worlds A,B,C --num-envs 4096 --homogeneous  # mixed vs alone
    python benchmarks/throughput.py --world DoorKey-8x8 --policy  # a policy forward in the loop

Modes: ``random`` (uniform random actions drawn on the device each step, engine only) and
``policy`` (a small embedding+MLP policy samples the actions from the observation each step).
Every step computes the true final observation of ended episodes, as the vector env does.
Mixed batches are bucketed by component set by default (``--bucketing auto``; ``none`` runs one
program for the whole batch). ``--homogeneous`` also times every world of the mix alone at the same
batch size and prints their harmonic mean (the speed of stepping each world's batch in turn) and
the mixed batch's ratio to it.
Each setting is timed ``--repeats`` times; ``steps_per_s`` is the median, ``steps_per_s_best`` the
best (shared machines are noisy: report the median).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from autoworld.envs.catalogue import list_worlds, load_world
from autoworld.envs.grid.bucketed import BUCKETING_MODES, make_engine
from autoworld.envs.grid.engine import NUM_ACTIONS
from autoworld.envs.grid.symbols import NUM_SYMBOLS


class TinyPolicy(torch.nn.Module):
    """Symbol embedding -> MLP -> action logits (the kind of policy a PPO agent would run)."""

    def __init__(self, image_shape: tuple[int, int], hidden: int = 64) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(NUM_SYMBOLS, 8)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(8 * image_shape[0] * image_shape[1], hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, NUM_ACTIONS),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.embed(image.long()).flatten(1))


def machine() -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(worlds, num_envs: int, device: str, steps: int, compile_: bool, mode: str,
        seed: int, repeats: int = 5, bucketing: str = "auto", cuda_graph: bool = False,
        concurrent: bool | None = None) -> dict:
    dev = torch.device(device)
    eng = make_engine(worlds, num_envs=num_envs, device=dev, seed=seed, compile=compile_,
                      bucketing=bucketing, cuda_graph=cuda_graph, concurrent=concurrent)
    obs = eng.reset()
    gen = torch.Generator(device=dev).manual_seed(seed)
    policy = TinyPolicy(eng.image_shape).to(dev) if mode == "policy" else None

    def one_step(obs):
        with torch.no_grad():
            if policy is None:
                actions = torch.randint(0, NUM_ACTIONS, (num_envs,), device=dev, generator=gen)
            else:
                logits = policy(obs["image"])
                actions = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)[:, 0]
            return eng.step(actions)

    warmup = max(3, min(20, steps // 10))
    for _ in range(warmup):
        obs, *_ = one_step(obs)
    sync(dev)
    done = torch.zeros((), dtype=torch.long, device=dev)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            obs, _, term, trunc, _ = one_step(obs)
            done += (term | trunc).sum()
        sync(dev)
        rates.append(num_envs * steps / (time.perf_counter() - t0))
    return {
        "worlds": [w.name for w in eng.worlds],
        "num_envs": num_envs,
        "device": str(dev),
        "mode": mode,
        "compile": compile_,
        "cuda_graph": cuda_graph,
        "concurrent": bool(getattr(eng, "streams", None)),
        "bucketing": bucketing,
        "buckets": getattr(eng, "num_buckets", 1),
        "steps": steps,
        "repeats": repeats,
        "steps_per_s": round(statistics.median(rates), 1),
        "steps_per_s_best": round(max(rates), 1),
        "episodes": int(done),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--world", default="DoorKey-8x8", help="catalogue name or spec path")
    ap.add_argument("--mixed", type=int, default=0,
                    help="instead of --world, mix this many catalogue worlds in one batch")
    ap.add_argument("--worlds", default="", help="comma-separated worlds to mix in one batch")
    ap.add_argument("--repeats", type=int, default=5, help="timed blocks per setting")
    ap.add_argument("--num-envs", default="1,64,4096", help="comma-separated batch sizes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: adaptive)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the step")
    ap.add_argument("--cuda-graph", action="store_true",
                    help="replay the step as a recorded CUDA graph (CUDA only)")
    ap.add_argument("--concurrent", action=argparse.BooleanOptionalAction, default=None,
                    help="step a mix's buckets on their own CUDA streams (CUDA only; default: "
                    "on with --cuda-graph, see make_engine)")
    ap.add_argument("--policy", action="store_true", help="policy forward pass in the loop")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bucketing", default="auto", choices=BUCKETING_MODES,
                    help="mixed batches: one program per component set (auto) or one in all")
    ap.add_argument("--homogeneous", action="store_true",
                    help="also time each world alone and report the mixed/homogeneous ratio")
    ap.add_argument("--json", action="store_true", help="JSON lines only (no header)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worlds:
        worlds = [load_world(n) for n in args.worlds.split(",")]
    elif args.mixed:
        names = list_worlds()[: args.mixed]
        worlds = [load_world(n) for n in names]
    else:
        worlds = [load_world(args.world)]
    if not args.json:
        print(json.dumps({"machine": machine()}))
    for n in (int(x) for x in args.num_envs.split(",")):
        steps = args.steps or max(20, min(1000, 1_000_000 // n))
        mode = "policy" if args.policy else "random"
        res = run(worlds, n, args.device, steps, args.compile, mode, args.seed, args.repeats,
                  args.bucketing, args.cuda_graph, args.concurrent)
        res["machine"] = machine()
        print(json.dumps(res), flush=True)
        if args.homogeneous and len(worlds) > 1:
            alone = {}
            for w in worlds:
                one = run([w], n, args.device, steps, args.compile, mode, args.seed,
                          args.repeats, cuda_graph=args.cuda_graph)
                alone[w.name] = one["steps_per_s"]
            harmonic = len(alone) / sum(1.0 / v for v in alone.values())
            print(json.dumps({
                "num_envs": n, "homogeneous_steps_per_s": alone,
                "homogeneous_harmonic_mean": round(harmonic, 1),
                "mixed_steps_per_s": res["steps_per_s"],
                "mixed_over_homogeneous": round(res["steps_per_s"] / harmonic, 3),
                "bucketing": args.bucketing, "compile": args.compile,
                "cuda_graph": args.cuda_graph, "concurrent": res["concurrent"],
                "machine": machine(),
            }), flush=True)


if __name__ == "__main__":
    main()
