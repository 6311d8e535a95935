"""Reference comparison: autoworld's PPO against stable-baselines3's PPO at the same sample budget.

Both learners train on the same world for the same number of env-steps with the hyper-parameters
that correspond (envs, rollout length, learning rate, epochs, minibatches, discount, GAE lambda,
clip, entropy and value coefficients, gradient clip, a 2 x ``--hidden`` tanh MLP), then both are
scored the same way: ``learners.evaluation.evaluate`` on the world's validation levels
(oracle-normalized), once with sampled actions and once with the argmax action. Training wall
time excludes that final evaluation.

- autoworld: ``learners.ppo.PPO`` on the batched engine (one tensor program for all envs).
- stable-baselines3: ``PPO("MlpPolicy")`` on ``gymnasium.make("autoworld/World-v0", spec=...)``
  envs in a ``DummyVecEnv`` (the standard single-process setup), each observation one-hot
  encoded (symbol codes) and flattened, which is what autoworld's MLP trunk sees through its
  symbol embedding.

stable-baselines3 is needed for this benchmark only (not a dependency of autoworld):

    pip install stable-baselines3
    python benchmarks/ppo_reference.py --world DoorKey-6x6 --steps 1000000 --threads 2

``--impl autoworld`` skips stable-baselines3 (minutes) and ``--net sb3`` gives autoworld's PPO
stable-baselines3's network and value loss (``PolicyConfig(encoding="onehot", activation="tanh",
dense_layers=2, shared_trunk=False)``, ``clip_vloss=False`` and ``vf_coef`` doubled, as its value
loss has no 0.5); the finer flags set each of these alone.

``DoorKey-6x6`` is the catalogue's DoorKey-8x8 spec at 6x6 with max_steps 360 (which autoworld's
PPO solves within ~1M steps, docs/benchmarks.md); any catalogue name or spec file also works.
One JSON line per implementation: implementation, world, steps, wall_s, steps_per_s,
normalized, normalized_gain, success, seed, config; then a summary line with the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


def load_spec(name: str):
    """A catalogue world, a spec file, or ``DoorKey-6x6`` (DoorKey-8x8 shrunk to 6x6)."""
    from autoworld.envs.catalogue import load_world
    from autoworld.spec import load_spec as load_spec_file
    from autoworld.spec import parse_spec

    if name == "DoorKey-6x6":
        data = load_world("DoorKey-8x8").model_dump(mode="json", exclude_none=True)
        data.update(name="DoorKey-6x6", height=6, width=6, max_steps=360)
        return parse_spec(data)
    if Path(name).is_file():
        return load_spec_file(name)
    return load_world(name)


def one_hot_flat(obs: dict, keys: list[str], num_symbols: int):
    """Numpy (B, D) float32 of a batched observation dict: symbol images one-hot, the rest as is."""
    import numpy as np

    parts = []
    for k in keys:
        x = np.asarray(obs[k])
        if k == "image":
            x = np.eye(num_symbols, dtype=np.float32)[x.astype(np.int64)]
        parts.append(x.reshape(x.shape[0], -1).astype(np.float32))
    return np.concatenate(parts, axis=1)


def run_autoworld(spec, args) -> tuple[float, int, object]:
    from autoworld.learners.policies import PolicyConfig
    from autoworld.learners.ppo import PPO, PPOConfig

    cfg = PPOConfig(num_envs=args.num_envs, num_steps=args.num_steps, learning_rate=args.lr,
                    anneal_lr=args.anneal_lr == "yes", update_epochs=args.epochs,
                    num_minibatches=args.minibatches, ent_coef=args.ent_coef, gamma=args.gamma,
                    gae_lambda=args.gae_lambda, clip_coef=args.clip,
                    max_grad_norm=args.max_grad_norm, clip_vloss=args.clip_vloss == "yes",
                    vf_coef=args.vf_coef * (2.0 if args.value_loss == "mse" else 1.0),
                    policy=PolicyConfig(trunk="mlp", hidden=args.hidden,
                                        encoding=args.encoding, activation=args.activation,
                                        dense_layers=args.dense_layers,
                                        shared_trunk=args.shared_trunk == "yes"))
    start = time.perf_counter()
    learner = PPO(spec, cfg, total_steps=args.steps, device=args.device, seed=args.seed)
    while learner.iteration < learner.num_iterations:
        learner.iterate()
    return time.perf_counter() - start, learner.global_step, learner.policy


def run_sb3(spec, args) -> tuple[float, int, object]:
    try:
        import gymnasium as gym
        from stable_baselines3 import PPO as SB3PPO
        from stable_baselines3.common.vec_env import DummyVecEnv
    except ImportError as exc:
        raise SystemExit("the reference needs stable-baselines3 (for this benchmark only): "
                         f"pip install stable-baselines3 ({exc})") from None
    import numpy as np
    import torch

    import autoworld  # noqa: F401 - registers the autoworld/* ids
    from autoworld.envs.grid.symbols import NUM_SYMBOLS

    class OneHot(gym.ObservationWrapper):
        def __init__(self, env: gym.Env) -> None:
            super().__init__(env)
            self.keys = [k for k in ("image", "features") if k in env.observation_space.spaces]
            sample = one_hot_flat({k: v[None] for k, v in env.observation_space.sample().items()},
                                  self.keys, NUM_SYMBOLS)
            self.observation_space = gym.spaces.Box(0.0, 1.0, (sample.shape[1],), np.float32)

        def observation(self, obs):
            return one_hot_flat({k: v[None] for k, v in obs.items()}, self.keys, NUM_SYMBOLS)[0]

    def make(i: int):
        def thunk():
            env = OneHot(gym.make("autoworld/World-v0", spec=spec))
            env.reset(seed=args.seed * 100_003 + i)
            return env
        return thunk

    venv = DummyVecEnv([make(i) for i in range(args.num_envs)])
    batch = args.num_envs * args.num_steps
    model = SB3PPO("MlpPolicy", venv, learning_rate=args.lr, n_steps=args.num_steps,
                   batch_size=batch // args.minibatches, n_epochs=args.epochs, gamma=args.gamma,
                   gae_lambda=args.gae_lambda, clip_range=args.clip, ent_coef=args.ent_coef,
                   vf_coef=args.vf_coef, max_grad_norm=args.max_grad_norm, seed=args.seed,
                   device=args.device, verbose=0,
                   policy_kwargs={"net_arch": {"pi": [args.hidden, args.hidden],
                                               "vf": [args.hidden, args.hidden]},
                                  "activation_fn": torch.nn.Tanh})
    start = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    wall = time.perf_counter() - start
    keys = venv.envs[0].keys

    def acting(deterministic: bool):
        def policy(obs: dict) -> torch.Tensor:
            flat = one_hot_flat({k: obs[k].cpu().numpy() for k in keys}, keys, NUM_SYMBOLS)
            actions, _ = model.predict(flat, deterministic=deterministic)
            return torch.as_tensor(actions, dtype=torch.long)
        return policy

    return wall, int(model.num_timesteps), {"sampled": acting(False), "greedy": acting(True)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="DoorKey-6x6")
    ap.add_argument("--steps", type=int, default=1_000_000, help="Env-step budget of each.")
    ap.add_argument("--impl", default="both", choices=["both", "autoworld", "sb3"])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads.")
    ap.add_argument("--num-envs", type=int, default=256)
    ap.add_argument("--num-steps", type=int, default=32, help="Rollout steps per env.")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--minibatches", type=int, default=16)
    ap.add_argument("--ent-coef", type=float, default=0.01)
    ap.add_argument("--vf-coef", type=float, default=0.5)
    ap.add_argument("--gamma", type=float, default=0.99)
    ap.add_argument("--gae-lambda", type=float, default=0.95)
    ap.add_argument("--clip", type=float, default=0.2)
    ap.add_argument("--max-grad-norm", type=float, default=0.5)
    ap.add_argument("--hidden", type=int, default=128)
    aw = ap.add_argument_group("autoworld's network and loss (stable-baselines3's are fixed: "
                               "one-hot, separate 2-layer tanh MLPs, unclipped mse value loss)")
    aw.add_argument("--net", default="autoworld", choices=["autoworld", "sb3"],
                    help="sb3: stable-baselines3's network and value loss (one-hot, separate "
                    "2-layer tanh actor and critic, unclipped mse), overriding the flags below.")
    aw.add_argument("--encoding", default="embed", choices=["embed", "onehot"])
    aw.add_argument("--activation", default="relu", choices=["relu", "tanh"])
    aw.add_argument("--dense-layers", type=int, default=1)
    aw.add_argument("--shared-trunk", default="yes", choices=["yes", "no"])
    aw.add_argument("--clip-vloss", default="yes", choices=["yes", "no"])
    aw.add_argument("--anneal-lr", default="no", choices=["yes", "no"],
                    help="yes: decay autoworld's learning rate linearly to 0 over the budget "
                         "(its PPO default; stable-baselines3 keeps --lr constant).")
    aw.add_argument("--value-loss", default="half-mse", choices=["half-mse", "mse"],
                    help="half-mse: 0.5 * vf_coef * mse (CleanRL); mse: vf_coef * mse "
                    "(stable-baselines3), i.e. autoworld's vf_coef doubled.")
    ap.add_argument("--eval-episodes", type=int, default=8, help="Episodes per validation level.")
    ap.add_argument("--heldout-levels", type=int, default=200,
                    help="Also score on this many test-split levels (0: skip); the 5 validation "
                         "levels resolve one step on one level as ~0.1%%, these finer.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    if args.net == "sb3":
        args.encoding, args.activation, args.dense_layers = "onehot", "tanh", 2
        args.shared_trunk, args.clip_vloss, args.value_loss = "no", "no", "mse"

    import torch

    torch.set_num_threads(args.threads)
    from autoworld.learners.evaluation import evaluate

    spec = load_spec(args.world)
    # Level banks and oracle values are built once per process; build them before any timing.
    from autoworld.envs.grid.levels import bank
    from autoworld.learners.evaluation import oracle_values

    bank(spec, "train")
    oracle_values(spec, "validation")
    heldout = args.heldout_levels or None
    if heldout:
        oracle_values(spec, "test", heldout)
    # The first torch.optim.Adam imports torch._dynamo (seconds); SB3 builds its optimizer
    # before its timer starts, so pay that import here for both.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    config = {k: v for k, v in vars(args).items() if k not in ("impl", "world", "seed")}
    print(json.dumps({"kind": "conditions", "world": spec.name, "cpu_count": os.cpu_count(),
                      "load_avg": os.getloadavg()[0], "torch": torch.__version__,
                      "machine": platform.processor() or platform.machine(),
                      "config": config}), flush=True)
    runs = {"autoworld": run_autoworld, "stable-baselines3": run_sb3}
    if args.impl != "both":
        keep = "autoworld" if args.impl == "autoworld" else "stable-baselines3"
        runs = {keep: runs[keep]}
    rows = {}
    for name, fn in runs.items():
        wall, steps, policy = fn(spec, args)
        # sampled actions (how the policy trained) and the argmax action (stable-baselines3's
        # evaluate_policy default), the same validation levels and seeds for both
        sampled_fn, greedy_fn = ((policy["sampled"], policy["greedy"])
                                 if isinstance(policy, dict) else (policy, policy))
        greedy_kw = {} if isinstance(policy, dict) else {"greedy": True}

        def score(fn, split, episodes, levels=None, **kw):
            return evaluate(fn, spec, split, episodes, args.device, seed=args.seed,
                            levels=levels, **kw)

        res = score(sampled_fn, "validation", args.eval_episodes)
        greedy = score(greedy_fn, "validation", args.eval_episodes, **greedy_kw)
        extra = {}
        if heldout:
            # held-out levels: sampled actions over 8 episodes per level, the argmax action once
            # (deterministic worlds play it the same every time)
            ho = score(sampled_fn, "test", 8, heldout)
            hg = score(greedy_fn, "test", 1, heldout, **greedy_kw)
            optimal = sum(abs(r - o) < 1e-9 for r, o in zip(hg.level_returns, hg.optimal_returns,
                                                             strict=True)) / len(hg.level_returns)
            extra = {"heldout_levels": heldout, "heldout_normalized": round(ho.normalized, 4),
                     "heldout_success": ho.success,
                     "heldout_normalized_greedy": round(hg.normalized, 4),
                     "heldout_success_greedy": hg.success,
                     "heldout_optimal_levels_greedy": round(optimal, 4)}
        rows[name] = row = {
            "kind": "result", "implementation": name, "world": spec.name, "steps": steps,
            "wall_s": round(wall, 2), "steps_per_s": round(steps / max(wall, 1e-9)),
            "normalized": round(res.normalized, 4),
            "normalized_gain": round(res.normalized_gain, 4), "success": res.success,
            "normalized_greedy": round(greedy.normalized, 4), "success_greedy": greedy.success,
            **extra, "seed": args.seed, "config": config}
        print(json.dumps(row), flush=True)
    if len(rows) == 2:
        a, b = rows["autoworld"], rows["stable-baselines3"]
        print(json.dumps({"kind": "summary", "speedup_wall": round(b["wall_s"] / a["wall_s"], 2),
                          "return_delta": round(a["normalized"] - b["normalized"], 4),
                          "return_delta_greedy": round(a["normalized_greedy"]
                                                       - b["normalized_greedy"], 4),
                          **({"heldout_delta_greedy": round(
                              a["heldout_normalized_greedy"] - b["heldout_normalized_greedy"], 4),
                              "heldout_delta": round(a["heldout_normalized"]
                                                     - b["heldout_normalized"], 4)}
                             if heldout else {}),
                          "target": "speedup_wall >= 10 and return_delta >= 0",
                          "load_avg_end": os.getloadavg()[0]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
