"""PPO (clipped objective, GAE) on the batched grid engine, CleanRL style.

Read top to bottom: config, advantage estimation, the learner (storage, rollout, update). All
tensors live on one device; the rollout steps every env at once (no Python loop over envs);
truncated episodes are bootstrapped with the value of their true final observation
(``info["final_obs"]``). ``PPO.iterate()`` runs one rollout and one update; the training driver
(``learners/train.py``) adds evaluation, logging and checkpoints around it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from autoworld.learners.policies import PolicyConfig, policy_from_spec, sample_actions
from autoworld.learners.update_graph import GraphedUpdate, wanted


class PPOHyperParams(BaseModel):
    """The hyper-parameters every PPO learner shares (grid ``PPOConfig``, arm ``ArmPPOConfig``,
    which override some defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_envs: int = Field(256, ge=1, le=1 << 20, description="Parallel envs in the rollout.")
    num_steps: int = Field(32, ge=1, le=4096, description="Steps per env per rollout.")
    learning_rate: float = Field(5e-4, gt=0, le=1.0, description="Adam learning rate.")
    anneal_lr: bool = Field(True, description="Decay the learning rate linearly to 0.")
    gamma: float = Field(0.99, ge=0.0, le=1.0, description="Discount factor.")
    gae_lambda: float = Field(0.95, ge=0.0, le=1.0, description="GAE lambda.")
    num_minibatches: int = Field(16, ge=1, description="Minibatches per epoch (many small updates "
                                 "per sample: what lets PPO solve DoorKey-8x8 in minutes, see "
                                 "docs/benchmarks.md).")
    update_epochs: int = Field(4, ge=1, description="Epochs over each rollout.")
    norm_adv: bool = Field(True, description="Normalize advantages per minibatch.")
    clip_coef: float = Field(0.2, gt=0, description="PPO ratio clipping coefficient.")
    clip_vloss: bool = Field(True, description="Clip the value loss like the ratio.")
    ent_coef: float = Field(0.01, ge=0, description="Entropy bonus coefficient.")
    vf_coef: float = Field(0.5, ge=0, description="Value loss coefficient.")
    max_grad_norm: float = Field(0.5, gt=0, description="Global gradient-norm clip.")
    target_kl: float | None = Field(None, gt=0, description="Stop the epochs early above this "
                                    "approximate KL (None: never).")

    def fit_budget(self, steps: int) -> PPOHyperParams:
        """This configuration with a rollout that fits in ``steps`` env-steps: fewer envs, and
        below one env's rollout fewer steps per rollout; unchanged when a rollout fits. A run
        capped at ``steps`` (whole rollouts within it) then never passes it."""
        steps = max(1, int(steps))
        if self.num_envs * self.num_steps <= steps:
            return self
        envs = max(1, steps // self.num_steps)
        return self.model_copy(update={"num_envs": envs,
                                       "num_steps": min(self.num_steps, steps // envs)})


def _mlp_policy() -> PolicyConfig:
    return PolicyConfig(trunk="mlp")


class PPOConfig(PPOHyperParams):
    """Hyper-parameters of PPO on grid worlds.

    The defaults are the configuration of the DoorKey-8x8 target in docs/benchmarks.md ("PPO on
    DoorKey-8x8": 0.9 within 5 minutes on 2 CPU cores). Two differ from the shared ones, both
    measured there: a constant learning rate (annealed to 0 over a 1M-step budget, DoorKey-8x8
    stayed at 0) and an MLP trunk over the symbol embedding (the conv trunk runs 3x slower on
    CPU). ``pg_needs_reward`` is its own: before DoorKey-8x8's first success every update
    followed normalized value noise and the policy drifted from uniform, so when the first
    successes came depended on the seed (0.9 reached in 1.15-4.05M steps, or not in 5 minutes,
    over 8 seeds; with it 1.28-3.67M, all 8 inside). Other networks: ``policy``;
    stable-baselines3's value loss: ``clip_vloss=False, vf_coef=1.0``."""

    anneal_lr: bool = Field(False, description="Decay the learning rate linearly to 0.")
    pg_needs_reward: bool = Field(True, description="Drop the policy-gradient term of an "
                                  "update whose rollout saw no nonzero reward (its advantages are "
                                  "value-function noise, which normalization scales to unit size); "
                                  "the value and entropy terms still apply. POET's batched PPO "
                                  "applies it per pair.")
    policy: PolicyConfig = Field(default_factory=_mlp_policy, description="Network.")


# ============================================================================ advantages
def compute_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
                next_value: torch.Tensor, gamma: float, lam: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over a rollout of T steps.

    Args:
        rewards: (T, B) reward of step t (truncation bootstraps already folded in).
        values: (T, B) value of the observation step t acted on.
        dones: (T, B) true where the episode ended at step t (no bootstrap across it).
        next_value: (B,) value of the observation after the last step.
        gamma, lam: discount and GAE lambda.

    Returns:
        advantages (T, B) and returns (T, B) = advantages + values.
    """
    T = rewards.shape[0]
    not_done = 1.0 - dones.to(values.dtype)
    advantages = torch.zeros_like(values)
    last = torch.zeros_like(next_value, dtype=values.dtype)
    for t in reversed(range(T)):
        nxt = next_value if t == T - 1 else values[t + 1]
        delta = rewards[t] + gamma * nxt * not_done[t] - values[t]
        last = delta + gamma * lam * not_done[t] * last
        advantages[t] = last
    return advantages, advantages + values


# ============================================================================ loss
def ppo_loss(logits: torch.Tensor, actions: torch.Tensor, old_logp: torch.Tensor,
             advantages: torch.Tensor, new_values: torch.Tensor, old_values: torch.Tensor,
             returns: torch.Tensor, config: PPOConfig) -> dict[str, torch.Tensor]:
    """The clipped PPO loss of one minibatch of N samples.

    ``loss = policy_loss - ent_coef * entropy + vf_coef * value_loss`` with
    ``value_loss = 0.5 * mean((V - R)^2)`` (CleanRL's scale: stable-baselines3 drops the 0.5, so
    its ``vf_coef`` is this one's halved), its error taken as the larger of the plain and the
    clipped one when ``clip_vloss`` is set. Advantages are normalized over the minibatch when
    ``norm_adv`` is set.

    Args:
        logits: (N, A) new action logits; actions: (N,) the actions taken.
        old_logp: (N,) their log-probabilities under the rollout policy.
        advantages, returns: (N,) GAE advantages and returns.
        new_values, old_values: (N,) values now and during the rollout.

    Returns:
        loss (with grad), and detached policy_loss, value_loss, entropy, approx_kl, clipfrac.
    """
    logp_all = torch.log_softmax(logits, -1)
    new_logp = logp_all.gather(1, actions[:, None])[:, 0]
    entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
    return clipped_ppo_loss(new_logp, entropy, old_logp, advantages, new_values, old_values,
                            returns, config)


SCALARS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac")


def minibatch_update(policy: nn.Module, optimizer: torch.optim.Optimizer,
                     params: list[torch.Tensor], obs: dict[str, torch.Tensor],
                     samples: list[torch.Tensor], config, zero_grad: bool = True) -> torch.Tensor:
    """One PPO minibatch update (forward, ``ppo_loss``, backward, gradient-norm clip, optimizer
    step); returns its scalars stacked in ``SCALARS`` order (detached).

    ``samples``: actions, old log-probabilities, advantages, returns, old values (N,) each.
    ``zero_grad=False`` leaves the gradients to the caller (see ``update_graph``)."""
    actions, old_logp, adv, ret, old_v = samples
    logits, new_v, _ = policy(obs)
    out = ppo_loss(logits, actions, old_logp, adv, new_v, old_v, ret, config)
    descend(out["loss"], optimizer, params, config.max_grad_norm, zero_grad)
    return torch.stack([out[k] for k in SCALARS]).detach()


def descend(loss: torch.Tensor, optimizer: torch.optim.Optimizer, params: list[torch.Tensor],
            max_grad_norm: float, zero_grad: bool = True) -> None:
    """One gradient step on ``loss``: backward, global gradient-norm clip, optimizer step."""
    if zero_grad:
        optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()


def loss_constants(config) -> tuple:
    """The constants of ``config`` that a PPO update bakes in (a recorded one, ``update_graph``)."""
    return (config.norm_adv, config.clip_coef, config.clip_vloss, config.ent_coef,
            config.vf_coef, config.max_grad_norm)


def minibatch_slices(n_items: int, num_minibatches: int) -> list[slice]:
    """``num_minibatches`` (at most ``n_items``) contiguous slices covering ``range(n_items)``,
    their sizes differing by at most one (``torch.tensor_split``'s split). Stepping by
    ``n_items // num_minibatches`` instead would add a minibatch of the remainder, a single
    sample when ``n_items % num_minibatches == 1``."""
    k = max(1, min(int(num_minibatches), int(n_items)))
    q, r = divmod(int(n_items), k)
    bounds = [i * q + min(i, r) for i in range(k + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def clipped_ppo_loss(new_logp: torch.Tensor, entropy: torch.Tensor, old_logp: torch.Tensor,
                     advantages: torch.Tensor, new_values: torch.Tensor,
                     old_values: torch.Tensor, returns: torch.Tensor,
                     config) -> dict[str, torch.Tensor]:
    """``ppo_loss`` for any action distribution: ``new_logp`` (N,) the log-probabilities of the
    taken actions under the current policy and ``entropy`` its mean entropy (scalar). ``config``
    needs ``norm_adv``, ``clip_coef``, ``clip_vloss``, ``ent_coef`` and ``vf_coef``."""
    c = config
    log_ratio = new_logp - old_logp
    ratio = log_ratio.exp()
    if c.norm_adv:
        centred = advantages - advantages.mean()
        # one sample has no spread (its std is NaN, which would poison every weight)
        advantages = centred / (advantages.std() + 1e-8) if advantages.numel() > 1 else centred
    pg_loss = torch.max(-advantages * ratio,
                        -advantages * ratio.clamp(1 - c.clip_coef, 1 + c.clip_coef)).mean()
    if c.clip_vloss:
        v_clipped = old_values + (new_values - old_values).clamp(-c.clip_coef, c.clip_coef)
        v_loss = 0.5 * torch.max((new_values - returns) ** 2, (v_clipped - returns) ** 2).mean()
    else:
        v_loss = 0.5 * ((new_values - returns) ** 2).mean()
    loss = pg_loss - c.ent_coef * entropy + c.vf_coef * v_loss
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clipfrac = ((ratio - 1.0).abs() > c.clip_coef).float().mean()
    return {"loss": loss, "policy_loss": pg_loss.detach(), "value_loss": v_loss.detach(),
            "entropy": entropy.detach(), "approx_kl": approx_kl, "clipfrac": clipfrac}


# ============================================================================ learner
def num_rollouts(total_steps: int, batch_size: int, cap: bool) -> int:
    """Rollouts of ``batch_size`` env-steps a learner runs for ``total_steps``: until it is
    reached (as stable-baselines3 counts), or with ``cap`` the whole rollouts that fit in it
    (the config fitted first, so at least one does)."""
    steps = int(total_steps)
    return max(1, steps // batch_size if cap else -(-steps // batch_size))


class PPO:
    """One PPO learner on one world: ``iterate()`` = one rollout of ``num_envs * num_steps``
    steps plus one update. Its full state (weights, optimizer, RNG, engine, episode stats) is
    ``state_dict()`` so that a resumed run continues exactly."""

    method = "ppo"

    def __init__(self, spec, config: PPOConfig, total_steps: int, device: str | torch.device =
                 "cpu", seed: int = 0, *, cap: bool = False,
                 graph_updates: bool | None = None) -> None:
        from autoworld import rng
        from autoworld.envs.grid.engine import GridEngine

        self.spec = spec
        # ``cap``: a budget is never passed (its rollout fitted to it, its whole rollouts run)
        self.config = c = config.fit_budget(total_steps) if cap else config
        self.device = torch.device(device)
        self.seed = seed
        self.batch_size = c.num_envs * c.num_steps
        self.num_iterations = num_rollouts(total_steps, self.batch_size, cap)
        self.iteration = 0
        self.global_step = 0

        self.engine = GridEngine(spec, num_envs=c.num_envs, device=self.device,
                                 seed=rng.derive_seed(seed, "train-engine") & 0x7FFFFFFF)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching global RNG
            torch.manual_seed(rng.derive_seed(seed, "policy-init") & 0x7FFFFFFF)
            self.policy = policy_from_spec(self.engine.observation_spec(), c.policy)
        self.policy.to(self.device)
        # fused: one kernel updates every parameter (~20% of a CPU iteration less than the
        # default per-tensor loop at 256 envs x 32 steps on DoorKey; same update rule)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=c.learning_rate, eps=1e-5,
                                          fused=True)
        # on CUDA, the minibatch update may replay as a recorded graph (learners/update_graph.py;
        # the learning rate is baked into a recording, so not with an annealed one)
        if graph_updates is None and c.anneal_lr:
            graph_updates = False
        self._graph = self.graphed_update() if wanted(self.device, graph_updates) else None
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(rng.derive_seed(seed, "ppo-sampling") & 0x7FFFFFFF)

        B = c.num_envs
        self.next_obs = self.engine.reset()
        self.next_done = torch.zeros(B, dtype=torch.bool, device=self.device)
        self.rnn_state = self.policy.initial_state(B, self.device)
        self.ep_return = torch.zeros(B, device=self.device)
        self.ep_length = torch.zeros(B, dtype=torch.long, device=self.device)

    def graphed_update(self, emulate: bool = False) -> GraphedUpdate:
        """This learner's minibatch update as a recorded CUDA graph (``update_graph``;
        ``emulate``: the CPU stand-in the tests use)."""
        pol, opt = self.policy, self.optimizer
        params = [p for p in pol.parameters() if p.requires_grad]

        def body(obs, samples, config, zero_grad: bool) -> torch.Tensor:
            return minibatch_update(pol, opt, params, obs, samples, config, zero_grad)

        return GraphedUpdate(pol, opt, body, consts=loss_constants, emulate=emulate)

    # ------------------------------------------------------------------ one iteration
    def iterate(self) -> dict[str, float]:
        """Collect one rollout and update the policy; returns scalar metrics."""
        c, dev, pol = self.config, self.device, self.policy
        T, B = c.num_steps, c.num_envs
        if c.anneal_lr:
            frac = 1.0 - self.iteration / self.num_iterations
            self.optimizer.param_groups[0]["lr"] = frac * c.learning_rate

        # ---------------------------------------------------------- storage
        obs_buf = {k: torch.zeros((T, B, *v.shape[1:]), dtype=v.dtype, device=dev)
                   for k, v in self.next_obs.items() if k in self._policy_keys()}
        actions = torch.zeros((T, B), dtype=torch.long, device=dev)
        logprobs = torch.zeros((T, B), device=dev)
        rewards = torch.zeros((T, B), device=dev)
        dones = torch.zeros((T, B), dtype=torch.bool, device=dev)
        resets = torch.zeros((T, B), dtype=torch.bool, device=dev)  # recurrent-state resets
        values = torch.zeros((T, B), device=dev)
        rnn_start = None if self.rnn_state is None else self.rnn_state.clone()
        finished_returns: list[torch.Tensor] = []
        finished_lengths: list[torch.Tensor] = []
        any_reward = torch.zeros((), dtype=torch.bool, device=dev)

        # ---------------------------------------------------------- rollout
        pol.eval()
        with torch.no_grad():
            for t in range(T):
                for k in obs_buf:
                    obs_buf[k][t] = self.next_obs[k]
                resets[t] = self.next_done
                logits, value, self.rnn_state = pol(self.next_obs, self.rnn_state,
                                                    self.next_done)
                action = sample_actions(logits, self.gen)
                logp = torch.log_softmax(logits, -1).gather(1, action[:, None])[:, 0]
                actions[t], logprobs[t], values[t] = action, logp, value
                obs, reward, terminated, truncated, info = self.engine.step(action)
                done = terminated | truncated
                boot = reward
                # bootstrap time-limit ends from the true final obs (on CPU only when one
                # ended: the check is cheap there, and skipping the forward is not)
                if self.device.type != "cpu" or bool(truncated.any()):
                    _, final_v, _ = pol(info["final_obs"], self.rnn_state)
                    boot = reward + c.gamma * final_v * truncated.float()
                rewards[t], dones[t] = boot, done
                self.ep_return += reward
                any_reward |= (reward != 0).any()
                self.ep_length += 1
                finished_returns.append(torch.where(done, self.ep_return, torch.nan))
                finished_lengths.append(torch.where(done, self.ep_length.float(), torch.nan))
                self.ep_return = torch.where(done, 0.0, self.ep_return)
                self.ep_length = torch.where(done, 0, self.ep_length)
                self.next_obs, self.next_done = obs, done
            _, next_value, _ = pol(self.next_obs, self.rnn_state, self.next_done)
        advantages, returns = compute_gae(rewards, values, dones, next_value, c.gamma,
                                          c.gae_lambda)
        if c.pg_needs_reward and not bool(any_reward):
            advantages = torch.zeros_like(advantages)  # no signal: the policy term is 0

        # ---------------------------------------------------------- update
        pol.train()
        recurrent = pol.gru is not None
        # recurrent policies re-run whole env sequences, so their minibatches split envs
        n_items = B if recurrent else T * B
        slices = minibatch_slices(n_items, c.num_minibatches)
        flat_obs = {k: v.reshape(T * B, *v.shape[2:]) for k, v in obs_buf.items()}
        stats: dict[str, float] = {}
        clipfracs = []
        params = [p for p in pol.parameters() if p.requires_grad]
        per_sample = (actions, logprobs, advantages, returns, values)
        for _epoch in range(c.update_epochs):
            perm = torch.randperm(n_items, generator=self.gen, device=dev)
            if not recurrent:
                # the epoch's samples gathered once in shuffled order, then each minibatch is a
                # slice (the same samples as gathering per minibatch, with 2 gathers per
                # tensor and epoch instead of one per minibatch)
                ep_obs = {k: v[perm] for k, v in flat_obs.items()}
                ep_data = [x.reshape(-1)[perm] for x in per_sample]
            for sl in slices:
                if not recurrent:  # one update, eager or replayed as a recorded graph
                    mb_obs = {k: v[sl] for k, v in ep_obs.items()}
                    mb = [x[sl] for x in ep_data]
                    scalars = (self._graph(mb_obs, mb, c) if self._graph is not None else
                               minibatch_update(pol, self.optimizer, params, mb_obs, mb, c))
                    pg_loss, v_loss, entropy, approx_kl, clipfrac = scalars.unbind()
                    clipfracs.append(clipfrac)
                    continue
                idx = perm[sl]
                logits, new_v = pol.forward_sequence(
                    {k: v[:, idx] for k, v in obs_buf.items()}, rnn_start[idx], resets[:, idx])
                logits, new_v = logits.reshape(-1, logits.shape[-1]), new_v.reshape(-1)
                mb_actions, mb_logp, mb_adv, mb_ret, mb_val = [x[:, idx].reshape(-1)
                                                               for x in per_sample]
                out = ppo_loss(logits, mb_actions, mb_logp, mb_adv, new_v, mb_val, mb_ret, c)
                loss, pg_loss, v_loss, entropy = (out["loss"], out["policy_loss"],
                                                  out["value_loss"], out["entropy"])
                approx_kl = out["approx_kl"]
                clipfracs.append(out["clipfrac"])
                descend(loss, self.optimizer, params, c.max_grad_norm)
            if c.target_kl is not None and float(approx_kl) > c.target_kl:
                break

        # ---------------------------------------------------------- metrics
        self.iteration += 1
        self.global_step += T * B
        fin_r = torch.stack(finished_returns)
        fin_l = torch.stack(finished_lengths)
        n_done = int((~fin_r.isnan()).sum())
        var_y = returns.var()
        stats.update({
            "learning_rate": float(self.optimizer.param_groups[0]["lr"]),
            "policy_loss": float(pg_loss.detach()),
            "value_loss": float(v_loss.detach()),
            "entropy": float(entropy.detach()),
            "approx_kl": float(approx_kl),
            "clipfrac": float(torch.stack(clipfracs).mean()),
            "explained_variance": float(1 - (returns - values).var() / var_y)
            if float(var_y) > 0 else float("nan"),
            "episodes": n_done,
            "episode_return": float(fin_r.nanmean()) if n_done else float("nan"),
            "episode_length": float(fin_l.nanmean()) if n_done else float("nan"),
        })
        return stats

    def _policy_keys(self) -> set[str]:
        keys = {self.policy.image_key}
        if self.policy.features_dim:
            keys.add("features")
        return keys

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (besides the config and the world); a deep copy,
        so that the learner going on does not change it. Adam's ``capturable`` (set by a
        recorded update, see ``update_graph``) is left off, so that it resumes on any device."""
        state = copy.deepcopy({
            "iteration": self.iteration,
            "global_step": self.global_step,
            "num_iterations": self.num_iterations,
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.gen.get_state(),
            "engine_state": self.engine.state.tensors(),
            "next_obs": dict(self.next_obs),
            "next_done": self.next_done,
            "rnn_state": self.rnn_state,
            "ep_return": self.ep_return,
            "ep_length": self.ep_length,
        })
        for group in state["optimizer"]["param_groups"]:
            group["capturable"] = False
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from autoworld.envs.grid.engine import GridState

        self.iteration = int(state["iteration"])
        self.global_step = int(state["global_step"])
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"].cpu())
        es = {k: v.to(self.device) for k, v in state["engine_state"].items()}
        extras = {k[2:]: v for k, v in es.items() if k.startswith("x.")}
        self.engine.state = GridState(**{k: v for k, v in es.items() if not k.startswith("x.")},
                                      extras=extras)
        self.next_obs = {k: v.to(self.device) for k, v in state["next_obs"].items()}
        self.next_done = state["next_done"].to(self.device)
        rs = state["rnn_state"]
        self.rnn_state = None if rs is None else rs.to(self.device)
        self.ep_return = state["ep_return"].to(self.device)
        self.ep_length = state["ep_length"].to(self.device)
