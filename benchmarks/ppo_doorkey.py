"""Learning-speed benchmark: PPO on DoorKey-8x8 on CPU, against the oracle.

Trains autoworld's PPO on the batched engine and prints one JSON line per evaluation (wall time,
env steps, steps/s, test-level R / R_opt and (R - R_rand) / (R_opt - R_rand)) and a final summary
line. The target (docs/benchmarks.md) is 0.9 oracle-normalized return in under 5 minutes on 2 CPU
cores. Evaluation time counts in the wall time.

    python benchmarks/ppo_doorkey.py --minutes 5 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="DoorKey-8x8")
    ap.add_argument("--minutes", type=float, default=5.0, help="Wall-clock budget.")
    ap.add_argument("--max-steps", type=int, default=20_000_000, help="Env-step budget.")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads.")
    # PPO's hyper-parameters: PPOConfig's defaults (what `autoworld train` runs) unless given
    ap.add_argument("--num-envs", type=int, default=None)
    ap.add_argument("--num-steps", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--minibatches", type=int, default=None,
                    help="Minibatches per epoch: many small updates per sample matter most here.")
    ap.add_argument("--ent-coef", type=float, default=None)
    ap.add_argument("--gamma", type=float, default=None)
    # network and loss: PPOConfig's defaults unless given (earlier figures in
    # docs/benchmarks.md name the flags they were measured with)
    ap.add_argument("--trunk", default=None, choices=["mlp", "conv"])
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--shared-trunk", default=None, choices=["yes", "no"],
                    help="Actor and critic share one encoder.")
    ap.add_argument("--encoding", default=None, choices=["embed", "onehot"])
    ap.add_argument("--activation", default=None, choices=["relu", "tanh"])
    ap.add_argument("--dense-layers", type=int, default=None)
    ap.add_argument("--clip-vloss", default=None, choices=["yes", "no"],
                    help="Clip the value loss like the ratio.")
    ap.add_argument("--value-loss", default=None, choices=["half-mse", "mse"],
                    help="half-mse: vf_coef 0.5 on 0.5 * MSE; mse: vf_coef 1.0 "
                    "(stable-baselines3's value loss).")
    ap.add_argument("--pg-needs-reward", default=None, choices=["yes", "no"],
                    help="Drop the policy term of updates whose rollout saw no reward.")
    ap.add_argument("--eval-every", type=float, default=15.0, help="Seconds between evals.")
    ap.add_argument("--eval-episodes", type=int, default=8, help="Episodes per test level.")
    ap.add_argument("--target", type=float, default=0.9, help="Stop at this normalized score.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from autoworld.envs.catalogue import load_world
    from autoworld.learners.evaluation import evaluate
    from autoworld.learners.policies import PolicyConfig
    from autoworld.learners.ppo import PPO, PPOConfig

    spec = load_world(args.world)
    net = {k: v for k, v in {"trunk": args.trunk, "hidden": args.hidden,
                             "encoding": args.encoding, "activation": args.activation,
                             "dense_layers": args.dense_layers}.items() if v is not None}
    if args.shared_trunk is not None:
        net["shared_trunk"] = args.shared_trunk == "yes"
    loss = {}
    if args.clip_vloss is not None:
        loss["clip_vloss"] = args.clip_vloss == "yes"
    if args.pg_needs_reward is not None:
        loss["pg_needs_reward"] = args.pg_needs_reward == "yes"
    if args.value_loss is not None:
        loss["vf_coef"] = 1.0 if args.value_loss == "mse" else 0.5
    hyper = {k: v for k, v in {
        "num_envs": args.num_envs, "num_steps": args.num_steps, "learning_rate": args.lr,
        "update_epochs": args.epochs, "num_minibatches": args.minibatches,
        "ent_coef": args.ent_coef, "gamma": args.gamma}.items() if v is not None}
    cfg = PPOConfig(anneal_lr=False, **hyper, **loss,
                    policy=PolicyConfig.model_validate({**PPOConfig().policy.model_dump(), **net}))
    conditions = {"world": args.world, "threads": args.threads, "device": args.device,
                  "cpu_count": os.cpu_count(), "load_avg": os.getloadavg()[0],
                  "machine": platform.processor() or platform.machine(),
                  "torch": torch.__version__, "config": cfg.model_dump(mode="json"),
                  "seed": args.seed}
    print(json.dumps({"kind": "conditions", **conditions}), flush=True)
    start = time.perf_counter()
    learner = PPO(spec, cfg, total_steps=args.max_steps, device=args.device, seed=args.seed)
    budget = args.minutes * 60.0
    next_eval = args.eval_every
    reached = None
    best = {"normalized": 0.0, "normalized_gain": 0.0}
    while learner.iteration < learner.num_iterations:
        stats = learner.iterate()
        elapsed = time.perf_counter() - start
        if elapsed < next_eval and elapsed < budget:
            continue
        next_eval = elapsed + args.eval_every
        res = evaluate(learner.policy, spec, "test", args.eval_episodes, args.device,
                       seed=args.seed)
        elapsed = time.perf_counter() - start
        rec = {"kind": "eval", "wall_time": round(elapsed, 2), "steps": learner.global_step,
               "steps_per_second": round(learner.global_step / elapsed),
               "train_return": stats["episode_return"], "entropy": round(stats["entropy"], 3),
               "test_return": res.mean_return,
               "normalized": res.normalized, "normalized_gain": res.normalized_gain,
               "success": res.success}
        print(json.dumps(rec), flush=True)
        if res.normalized_gain > best["normalized_gain"]:
            best = {"normalized": res.normalized, "normalized_gain": res.normalized_gain}
        if reached is None and min(res.normalized, res.normalized_gain) >= args.target:
            reached = {"wall_time": round(elapsed, 2), "steps": learner.global_step}
            break
        if elapsed >= budget:
            break
    summary = {"kind": "summary", "target": args.target, "reached": reached,
               "wall_time": round(time.perf_counter() - start, 2),
               "steps": learner.global_step, "best": best,
               "load_avg_end": os.getloadavg()[0]}
    print(json.dumps(summary), flush=True)
    return 0 if reached is not None else 1


if __name__ == "__main__":
    sys.exit(main())
