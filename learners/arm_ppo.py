"""PPO on arm worlds: a diagonal Gaussian policy over the arm's continuous actions.

Read top to bottom like CleanRL's ``ppo_continuous_action``: config, network, loss, the learner
(storage, rollout, advantages, update, state), then ``run_arm_ppo``, the method-registry entry
(``arm-ppo`` in ``learners/arm_methods.py``).

- Actions: the end-effector delta interface by default (``(dx, dy, grip)``, 3 numbers), or
  joint velocities (``N_MAX`` numbers plus the grip). The policy samples an unbounded Gaussian
  action; the engine receives it clipped to the action bounds [-1, 1], and the log-probability
  is that of the unclipped sample (CleanRL's convention). The log-std is one learned vector,
  independent of the state.
- Observations: ``xembodiment.flat_obs`` (the masked joint states and descriptions, the end
  effector and the task features in one vector), so one network shape serves every arm.
- Every env of the run steps in one batched ``ArmEngine`` on the run's device; no Python loop
  over envs. Time-limit ends are bootstrapped with the value of ``info["final_obs"]``.
- Advantages come from ``learners.ppo.compute_gae`` (the grid learner's). The clipped surrogate
  is the grid learner's ``ppo_loss`` with Gaussian log-probabilities in place of the
  categorical ones (that function reads logits, so the loss arithmetic is restated here).

Example:
    >>> from autoworld.envs.arm.spec import arm_world
    >>> learner = ArmPPO(arm_world("reach", "arm3"), ArmPPOConfig(num_envs=4, num_steps=8),
    ...                  total_steps=32)
    >>> sorted(learner.iterate())[:2]
    ['action_std', 'approx_kl']
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from autoworld.learners.methods import MethodError, MethodOptions, MethodResult
from autoworld.learners.ppo import (
    PPOHyperParams,
    clipped_ppo_loss,
    compute_gae,
    minibatch_slices,
    num_rollouts,
)
from autoworld.learners.xembodiment import flat_obs


class ArmPPOConfig(PPOHyperParams):
    """Hyper-parameters of PPO on arm worlds (``PPOHyperParams`` with arm defaults)."""

    num_envs: int = Field(64, ge=1, le=1 << 20, description="Parallel envs in the rollout.")
    num_steps: int = Field(64, ge=1, le=4096, description="Steps per env per rollout.")
    learning_rate: float = Field(1e-3, gt=0, le=1.0, description="Adam learning rate.")
    num_minibatches: int = Field(8, ge=1, description="Minibatches per epoch.")
    update_epochs: int = Field(6, ge=1, description="Epochs over each rollout.")
    ent_coef: float = Field(0.0, ge=0, description="Entropy bonus coefficient.")
    hidden: int = Field(64, ge=4, le=4096, description="Width of the actor's and the critic's "
                        "hidden layers.")
    layers: int = Field(2, ge=1, le=8, description="Hidden layers of each network.")
    init_log_std: float = Field(-0.5, ge=-5.0, le=2.0, description="Initial log standard "
                                "deviation of every action dimension.")
    reward_scale: float = Field(1.0, gt=0, description="Rewards are multiplied by this for the "
                                "update (returns are reported unscaled).")
    interface: Literal["ee_delta", "joint_velocity"] = Field(
        "ee_delta", description="Action interface: end-effector deltas (dx, dy, grip) executed "
        "by IK, or joint velocities plus the grip.")


# ============================================================================ network
def _layer(a: int, b: int, std: float = math.sqrt(2)) -> nn.Linear:
    lin = nn.Linear(a, b)
    nn.init.orthogonal_(lin.weight, std)
    nn.init.zeros_(lin.bias)
    return lin


def _tower(inp: int, hidden: int, layers: int, out: int, out_std: float) -> nn.Sequential:
    mods: list[nn.Module] = []
    size = inp
    for _ in range(layers):
        mods += [_layer(size, hidden), nn.Tanh()]
        size = hidden
    return nn.Sequential(*mods, _layer(size, out, out_std))


class GaussianActorCritic(nn.Module):
    """Separate actor and critic MLPs on the flat arm observation; a state-independent log-std.

    ``forward(x)`` returns ``(mean (N, A), log_std (A,), value (N,))`` for flat observations
    ``x`` (N, obs_dim) (``xembodiment.flat_obs``)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: int = 64, layers: int = 2,
                 init_log_std: float = -0.5) -> None:
        super().__init__()
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        self.actor = _tower(obs_dim, hidden, layers, action_dim, 0.01)
        self.critic = _tower(obs_dim, hidden, layers, 1, 1.0)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(init_log_std)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.actor(x), self.log_std, self.critic(x)[:, 0]

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], greedy: bool = True,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """Engine actions (N, A) in [-1, 1] for an observation dict: the mean, or a sample."""
        mean, log_std, _ = self(flat_obs(obs))
        if not greedy:
            mean = mean + log_std.exp() * torch.randn(mean.shape, generator=generator,
                                                      device=mean.device)
        return mean.clamp(-1.0, 1.0)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, action: torch.Tensor
                      ) -> torch.Tensor:
    """Log-density (N,) of actions (N, A) under the diagonal Gaussian (mean, exp(log_std))."""
    z = (action - mean) / log_std.exp()
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


# ============================================================================ loss
def gaussian_ppo_loss(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor,
                      old_logp: torch.Tensor, advantages: torch.Tensor,
                      new_values: torch.Tensor, old_values: torch.Tensor,
                      returns: torch.Tensor, config: ArmPPOConfig) -> dict[str, torch.Tensor]:
    """The clipped PPO loss of ``learners.ppo.ppo_loss`` (same terms, same scales) for a
    diagonal Gaussian policy: ``mean`` (N, A), ``log_std`` (A,), ``actions`` (N, A) the
    unclipped samples; the rest (N,) as there."""
    new_logp = gaussian_log_prob(mean, log_std, actions)
    entropy = (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum()  # per sample, exact
    return clipped_ppo_loss(new_logp, entropy, old_logp, advantages, new_values, old_values,
                            returns, config)


# ============================================================================ learner
class ArmPPO:
    """One PPO learner on one arm world: ``iterate()`` = one rollout of
    ``num_envs * num_steps`` steps in one ``ArmEngine`` plus one update. ``state_dict()`` holds
    everything needed to continue exactly (weights, optimizer, RNG, engine state, counters)."""

    def __init__(self, spec, config: ArmPPOConfig, total_steps: int,
                 device: str | torch.device = "cpu", seed: int = 0, *, cap: bool = False
                 ) -> None:
        from autoworld import rng
        from autoworld.envs.arm.engine import ArmEngine

        # like PPO: ``cap`` fits the rollout to total_steps and runs the whole rollouts that fit
        c = self.config = config.fit_budget(total_steps) if cap else config
        self.spec = spec.model_copy(update={"interface": c.interface})
        self.device = torch.device(device)
        self.seed = seed
        self.batch_size = c.num_envs * c.num_steps
        self.num_iterations = num_rollouts(total_steps, self.batch_size, cap)
        self.iteration = 0
        self.global_step = 0
        self.engine = ArmEngine(self.spec, num_envs=c.num_envs, device=self.device,
                                seed=rng.derive_seed(seed, "arm-ppo-engine") & 0x7FFFFFFF)
        self.action_dim = 3 if c.interface == "ee_delta" else self.engine.action_dim + 1
        self.next_obs = self.engine.observe()
        obs_dim = flat_obs(self.next_obs).shape[1]
        with torch.random.fork_rng(devices=[]):  # seeded init without touching global RNG
            torch.manual_seed(rng.derive_seed(seed, "policy-init") & 0x7FFFFFFF)
            self.policy = GaussianActorCritic(obs_dim, self.action_dim, c.hidden, c.layers,
                                              c.init_log_std)
        self.policy.to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=c.learning_rate, eps=1e-5)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(rng.derive_seed(seed, "arm-ppo-sampling") & 0x7FFFFFFF)
        B = c.num_envs
        self.ep_return = torch.zeros(B, device=self.device)
        self.ep_length = torch.zeros(B, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ one iteration
    def iterate(self) -> dict[str, float]:
        """Collect one rollout and update the policy; returns scalar metrics."""
        c, dev, pol = self.config, self.device, self.policy
        T, B, A = c.num_steps, c.num_envs, self.action_dim
        if c.anneal_lr:
            frac = 1.0 - self.iteration / self.num_iterations
            self.optimizer.param_groups[0]["lr"] = frac * c.learning_rate

        # ---------------------------------------------------------- storage
        x = flat_obs(self.next_obs)
        obs_buf = torch.zeros((T, B, x.shape[1]), device=dev)
        actions = torch.zeros((T, B, A), device=dev)  # unclipped samples
        logprobs = torch.zeros((T, B), device=dev)
        rewards = torch.zeros((T, B), device=dev)
        dones = torch.zeros((T, B), dtype=torch.bool, device=dev)
        values = torch.zeros((T, B), device=dev)
        fin_ret = torch.full((T, B), torch.nan, device=dev)
        fin_len = torch.full((T, B), torch.nan, device=dev)
        fin_ok = torch.full((T, B), torch.nan, device=dev)

        # ---------------------------------------------------------- rollout
        pol.eval()
        with torch.no_grad():
            for t in range(T):
                obs_buf[t] = x
                mean, log_std, value = pol(x)
                action = mean + log_std.exp() * torch.randn(mean.shape, generator=self.gen,
                                                            device=dev)
                actions[t] = action
                logprobs[t] = gaussian_log_prob(mean, log_std, action)
                values[t] = value
                obs, reward, terminated, truncated, info = self.engine.step(
                    action.clamp(-1.0, 1.0))
                done = terminated | truncated
                boot = reward * c.reward_scale
                # bootstrap time-limit ends from the true final observation (on the CPU only
                # when one ended: the check is cheap there, the extra forward is not)
                if dev.type != "cpu" or bool(truncated.any()):
                    final_v = pol(flat_obs(info["final_obs"]))[2]
                    boot = boot + c.gamma * final_v * truncated.float()
                rewards[t], dones[t] = boot, done
                self.ep_return += reward
                self.ep_length += 1
                fin_ret[t] = torch.where(done, self.ep_return, torch.nan)
                fin_len[t] = torch.where(done, self.ep_length.float(), torch.nan)
                fin_ok[t] = torch.where(done, info["success"].float(), torch.nan)
                self.ep_return = torch.where(done, 0.0, self.ep_return)
                self.ep_length = torch.where(done, 0, self.ep_length)
                self.next_obs, x = obs, flat_obs(obs)
            next_value = pol(x)[2]

        # ---------------------------------------------------------- advantages
        advantages, returns = compute_gae(rewards, values, dones, next_value, c.gamma,
                                          c.gae_lambda)

        # ---------------------------------------------------------- update
        pol.train()
        n_items = T * B
        slices = minibatch_slices(n_items, c.num_minibatches)
        f_obs, f_act = obs_buf.reshape(n_items, -1), actions.reshape(n_items, A)
        f_logp, f_adv = logprobs.reshape(-1), advantages.reshape(-1)
        f_ret, f_val = returns.reshape(-1), values.reshape(-1)
        clipfracs = []
        for _epoch in range(c.update_epochs):
            perm = torch.randperm(n_items, generator=self.gen, device=dev)
            for sl in slices:
                idx = perm[sl]
                mean, log_std, new_v = pol(f_obs[idx])
                out = gaussian_ppo_loss(mean, log_std, f_act[idx], f_logp[idx], f_adv[idx],
                                        new_v, f_val[idx], f_ret[idx], c)
                clipfracs.append(out["clipfrac"])
                self.optimizer.zero_grad()
                out["loss"].backward()
                nn.utils.clip_grad_norm_(pol.parameters(), c.max_grad_norm)
                self.optimizer.step()
            if c.target_kl is not None and float(out["approx_kl"]) > c.target_kl:
                break

        # ---------------------------------------------------------- metrics
        self.iteration += 1
        self.global_step += n_items
        n_done = int((~fin_ret.isnan()).sum())
        var_y = returns.var()
        return {
            "learning_rate": float(self.optimizer.param_groups[0]["lr"]),
            "policy_loss": float(out["policy_loss"]),
            "value_loss": float(out["value_loss"]),
            "entropy": float(out["entropy"]),
            "approx_kl": float(out["approx_kl"]),
            "clipfrac": float(torch.stack(clipfracs).mean()),
            "action_std": float(pol.log_std.detach().exp().mean()),
            "explained_variance": float(1 - (returns - values).var() / var_y)
            if float(var_y) > 0 else float("nan"),
            "episodes": n_done,
            "episode_return": float(fin_ret.nanmean()) if n_done else float("nan"),
            "episode_length": float(fin_len.nanmean()) if n_done else float("nan"),
            "episode_success": float(fin_ok.nanmean()) if n_done else float("nan"),
        }

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (besides the config and the world); a deep
        copy, so that the learner going on does not change it."""
        s = self.engine.state
        return copy.deepcopy({
            "iteration": self.iteration, "global_step": self.global_step,
            "num_iterations": self.num_iterations,
            "policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
            "generator": self.gen.get_state(),
            "engine_state": {f.name: getattr(s, f.name) for f in fields(s)},
            "next_obs": dict(self.next_obs),
            "ep_return": self.ep_return, "ep_length": self.ep_length,
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self.global_step = int(state["global_step"])
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"].cpu())
        for k, v in state["engine_state"].items():  # any layout may be assigned (ArmState)
            setattr(self.engine.state, k, v.to(self.device).clone())
        self.next_obs = {k: v.to(self.device) for k, v in state["next_obs"].items()}
        self.ep_return = state["ep_return"].to(self.device)
        self.ep_length = state["ep_length"].to(self.device)


# ============================================================================ method entry
def ppo_actor(policy: GaussianActorCritic, greedy: bool = True, seed: int = 0):
    """An actor factory for ``learners.arm_bc.rollout``: the policy's mean action (or a
    sample) every step."""

    def factory(engine):
        gen = torch.Generator(device=engine.device).manual_seed(seed)
        return lambda obs, k: policy.act(obs, greedy=greedy, generator=gen)

    return factory


def default_config(steps: int, num_envs: int) -> ArmPPOConfig:
    """The method's configuration for a budget: ``num_envs`` envs and rollouts of 64 steps,
    halved (down to 16) until the budget holds at least 16 updates."""
    num_steps = 64
    while num_steps > 16 and steps < num_steps * num_envs * 16:
        num_steps //= 2
    return ArmPPOConfig(num_envs=num_envs, num_steps=num_steps)


def run_arm_ppo(world, steps: int = 200_000, num_envs: int = 64, seed: int = 0,
                device: str = "cpu", run_dir=None, options: MethodOptions | None = None,
                config: ArmPPOConfig | None = None, resume: bool = False,
                checkpoint_every: int = 10) -> MethodResult:
    """Train arm PPO within ``steps`` env-steps (the whole rollouts that fit) and score the
    greedy (mean-action) policy on ``options.eval_episodes * 8`` validation episodes against
    the scripted expert and the random policy on the same scenes.

    With ``run_dir``: ``metrics.jsonl`` (one line per iteration), ``checkpoint/state.pt``
    every ``checkpoint_every`` iterations and at the end, ``policy.pt`` and ``result.json``.
    ``resume=True`` continues from ``checkpoint/state.pt`` (same world, seed and config),
    giving the result of an uninterrupted run."""
    from autoworld.atomic import atomic_write
    from autoworld.learners.arm_bc import expert_actor, random_actor, rollout
    from autoworld.learners.arm_methods import arm_world_arg, normalized_scores
    from autoworld.learners.checkpoint import load_state, save_state

    options = options or MethodOptions()
    spec = arm_world_arg(world)
    # the world's own action interface (a joint-velocity world trains joint velocities): a
    # config that asks for another would train another world under this one's name
    cfg = config or default_config(steps, num_envs).model_copy(
        update={"interface": spec.interface})
    if cfg.interface != spec.interface:
        raise MethodError(f"{spec.name} acts through {spec.interface!r} and the config asks for "
                          f"{cfg.interface!r}; use the world of that interface, or leave the "
                          "config's interface as the world's")
    start = time.perf_counter()
    learner = ArmPPO(spec, cfg, steps, device=device, seed=seed, cap=True)
    episodes = max(8, options.eval_episodes * 8)
    eval_seed = seed + 10_007  # validation scenes differ from the training engine's

    def evaluate(actor) -> Any:
        return rollout(actor, [learner.spec], episodes, seed=eval_seed, device=device)

    rd = Path(run_dir) if run_dir is not None else None
    ckpt = rd / "checkpoint" / "state.pt" if rd is not None else None
    meta = {"world": spec.name, "spec_hash": spec.content_hash(), "seed": seed,
            "config": cfg.model_dump(mode="json"), "steps": int(steps)}
    initial = None
    if resume and ckpt is not None and ckpt.is_file():
        state = load_state(ckpt, device=learner.device)
        if state["meta"] != meta:
            raise MethodError(f"{ckpt} holds another run ({state['meta']['world']}, seed "
                             f"{state['meta']['seed']}, other budget or config); use another "
                             "run directory or drop resume")
        learner.load_state_dict(state["learner"])
        initial = state["initial_return"]
    if initial is None:
        initial = evaluate(ppo_actor(learner.policy)).mean_return
    if rd is not None:
        rd.mkdir(parents=True, exist_ok=True)
        lines = []
        if resume and (rd / "metrics.jsonl").is_file():  # drop lines past the checkpoint
            lines = [ln for ln in (rd / "metrics.jsonl").read_text("utf-8").splitlines()
                     if ln.strip() and json.loads(ln)["iteration"] <= learner.iteration]
        atomic_write(rd / "metrics.jsonl", "".join(f"{ln}\n" for ln in lines))

    def save() -> None:
        if ckpt is not None:
            save_state(ckpt, {"meta": meta, "learner": learner.state_dict(),
                              "initial_return": initial})

    last: dict[str, float] = {}
    while learner.iteration < learner.num_iterations:
        t0 = time.perf_counter()
        last = learner.iterate()
        if rd is not None:
            rec = {"iteration": learner.iteration, "env_steps": learner.global_step,
                   "steps_per_second": learner.batch_size / max(time.perf_counter() - t0, 1e-9),
                   **last}
            with open(rd / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v)
                                         else v) for k, v in rec.items()}) + "\n")
            if (learner.iteration % checkpoint_every == 0
                    or learner.iteration == learner.num_iterations):
                save()
    final = evaluate(ppo_actor(learner.policy))
    expert = evaluate(expert_actor(None, seed=eval_seed))
    rand = evaluate(random_actor(eval_seed))
    score, gain = normalized_scores(final.mean_return, expert.mean_return, rand.mean_return)
    init_score, _ = normalized_scores(initial, expert.mean_return, rand.mean_return)
    test_score = None
    if options.test_eval:
        shifted = rollout(ppo_actor(learner.policy), [learner.spec], episodes, seed=eval_seed,
                          device=device, split="shifted")
        test_score = normalized_scores(shifted.mean_return, expert.mean_return,
                                       rand.mean_return)[0]
    out = MethodResult(method="arm-ppo", world=spec.name, seed=seed, steps=steps,
                       env_steps=learner.global_step, initial_score=init_score, score=score,
                       normalized_gain=gain, mean_return=final.mean_return,
                       success=final.success, test_score=test_score,
                       seconds=time.perf_counter() - start,
                       extra={"iterations": learner.iteration,
                              "train_episode_return": last.get("episode_return"),
                              "action_std": last.get("action_std"),
                              "expert_return": expert.mean_return,
                              "expert_success": expert.success,
                              "random_return": rand.mean_return,
                              "random_success": rand.success,
                              "eval_episodes": episodes,
                              "config": learner.config.model_dump(mode="json"),  # as run
                              "oracle": "scripted expert (not a proven optimum)"})
    if rd is not None:
        save_state(rd / "policy.pt", {"policy": learner.policy.state_dict(),
                                      "obs_dim": learner.policy.obs_dim,
                                      "action_dim": learner.action_dim,
                                      "config": learner.config.model_dump(mode="json"),
                                      "world": spec.name, "spec_hash": spec.content_hash()})
        atomic_write(rd / "result.json", out.model_dump_json(indent=1) + "\n")
    return out
