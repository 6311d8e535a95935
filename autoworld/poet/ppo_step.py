"""PPO for POET pairs, batched like the ES step: the rollouts of every pair run in one engine
call, and one autograd pass updates every pair's parameter row (the loss is a sum of per-pair
losses, so the rows' gradients never mix).

Hyper-parameters are ``autoworld.learners.ppo.PPOConfig`` (the project's PPO), advantages come
from its ``compute_gae``. Differences from ``learners.ppo.PPO``: the network is the POET policy
(``PoetPolicy`` with its value head), every call starts fresh episodes (a pair's rollout does not
carry over between POET iterations, so checkpoints stay small), and time-limit ends are treated
as terminal. Adam runs per row with its own step count, from the pair's saved moments.
``pg_needs_reward`` applies per pair: a pair whose rollout saw no nonzero reward gets no
policy-gradient term (its value and entropy terms still apply), whatever the other pairs saw.
"""

from __future__ import annotations

import torch

from autoworld import rng
from autoworld.learners.ppo import PPOConfig, compute_gae, minibatch_slices
from autoworld.poet.policy import sample_actions
from autoworld.poet.rollout import (
    EsJob,
    EsResult,
    RolloutEngine,
    WorldEntry,
    _job_keys,
    _pin_env_keys,
    bank_size,
)


def run_ppo_steps(runner: RolloutEngine, worlds: dict[str, WorldEntry], jobs: list[EsJob],
                  cfg: PPOConfig) -> list[EsResult]:
    """One PPO iteration (rollout of ``cfg.num_steps`` x ``cfg.num_envs`` per pair, then
    ``update_epochs`` epochs of ``num_minibatches`` minibatches) for every job."""
    if not jobs:
        return []
    pol = runner.policy
    if not pol.value_head:
        raise ValueError("PPO needs a PoetPolicy built with value_head=True")
    R, E, T = len(jobs), cfg.num_envs, cfg.num_steps
    N = R * E
    keys = sorted({j.world for j in jobs})
    index = {k: i for i, k in enumerate(keys)}
    env_world = [index[j.world] for j in jobs for _ in range(E)]
    train_levels = bank_size(jobs)
    eng = runner._engine(worlds, keys, env_world, "train", train_levels)
    levels = torch.cat([rng.randint(_job_keys(rng.derive_seed(j.seed, "levels"), E),
                                    torch.zeros(E, dtype=torch.long), 7, train_levels)
                        for j in jobs])
    obs = eng.reset(seed=0, level_ids=levels.to(runner.device))
    env_keys = torch.cat([_job_keys(rng.derive_seed(j.seed, "rollout"), E) for j in jobs])
    env_keys = env_keys.to(runner.device)
    _pin_env_keys(eng, env_keys)
    theta = torch.stack([j.theta for j in jobs]).to(runner.device)
    S = pol.S
    sym_buf = torch.zeros((T, R, E, S, S), dtype=torch.uint8, device=runner.device)
    actions = torch.zeros((T, N), dtype=torch.long, device=runner.device)
    logprobs = torch.zeros((T, N), device=runner.device)
    values = torch.zeros((T, N), device=runner.device)
    rewards = torch.zeros((T, N), device=runner.device)
    dones = torch.zeros((T, N), dtype=torch.bool, device=runner.device)
    ep_return = torch.zeros(N, device=runner.device)
    finished = []
    with torch.no_grad():
        params = pol.unpack(theta)
        for t in range(T):
            sym = runner.view(eng, obs["image"]).reshape(R, E, S, S)
            sym_buf[t] = sym
            logits, value = pol.heads(params, sym)
            logits, value = logits.reshape(N, -1), value.reshape(N)
            act = sample_actions(logits, env_keys, t)
            actions[t], values[t] = act, value
            logprobs[t] = torch.log_softmax(logits, -1).gather(1, act[:, None])[:, 0]
            obs, reward, terminated, truncated, _ = eng.step(act)
            runner.env_steps += N
            done = terminated | truncated
            rewards[t], dones[t] = reward, done
            ep_return += reward
            finished.append(torch.where(done, ep_return, torch.nan))
            ep_return = torch.where(done, 0.0, ep_return)
        sym = runner.view(eng, obs["image"]).reshape(R, E, S, S)
        next_value = pol.heads(params, sym)[1].reshape(N)
    adv, ret = compute_gae(rewards, values, dones, next_value, cfg.gamma, cfg.gae_lambda)

    def rows(x: torch.Tensor) -> torch.Tensor:
        """(T, R*E) -> (R, T*E): each pair's samples in one row."""
        return x.reshape(T, R, E).permute(1, 0, 2).reshape(R, T * E)

    adv, ret, old_v, old_logp, act_r = rows(adv), rows(ret), rows(values), rows(logprobs), \
        rows(actions)
    if cfg.pg_needs_reward:
        # a pair that saw no reward has advantages of pure value noise: no policy term for it
        # (zero rows stay zero through the per-row normalization below)
        adv = adv * (rows(rewards) != 0).any(1, keepdim=True)
    sym_r = sym_buf.permute(1, 0, 2, 3, 4).reshape(R, T * E, S, S)
    m = torch.stack([j.m for j in jobs]).to(runner.device)
    v = torch.stack([j.v for j in jobs]).to(runner.device)
    step_t = torch.tensor([float(j.t) for j in jobs], device=runner.device)
    lr = torch.tensor([j.lr for j in jobs], device=runner.device)
    gens = [torch.Generator().manual_seed(rng.derive_seed(j.seed, "minibatch") & 0x7FFFFFFF)
            for j in jobs]
    n_items = T * E
    b1, b2, eps = 0.9, 0.999, 1e-5
    for _epoch in range(cfg.update_epochs):
        perms = torch.stack([torch.randperm(n_items, generator=g) for g in gens]
                            ).to(runner.device)  # (R, T*E)
        for sl in minibatch_slices(n_items, cfg.num_minibatches):
            idx = perms[:, sl]  # (R, mb)
            p = theta.clone().requires_grad_(True)
            rows_idx = torch.arange(R, device=idx.device)[:, None]
            logits, new_v = pol.heads(pol.unpack(p), sym_r[rows_idx, idx])  # (R, mb, ...)
            logp_all = torch.log_softmax(logits, -1)  # (R, mb, 7)
            a = act_r.gather(1, idx)
            new_logp = logp_all.gather(2, a[:, :, None])[:, :, 0]
            entropy = -(logp_all.exp() * logp_all).sum(-1).mean(1)  # (R,)
            ratio = (new_logp - old_logp.gather(1, idx)).exp()
            mb_adv = adv.gather(1, idx)
            if cfg.norm_adv:  # (one sample has no spread: centred only, as in clipped_ppo_loss)
                centred = mb_adv - mb_adv.mean(1, keepdim=True)
                mb_adv = (centred / (mb_adv.std(1, keepdim=True) + 1e-8)
                          if mb_adv.shape[1] > 1 else centred)
            pg = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(
                1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean(1)
            mb_ret, mb_val = ret.gather(1, idx), old_v.gather(1, idx)
            if cfg.clip_vloss:
                v_clip = mb_val + (new_v - mb_val).clamp(-cfg.clip_coef, cfg.clip_coef)
                v_loss = 0.5 * torch.max((new_v - mb_ret) ** 2, (v_clip - mb_ret) ** 2).mean(1)
            else:
                v_loss = 0.5 * ((new_v - mb_ret) ** 2).mean(1)
            loss = (pg - cfg.ent_coef * entropy + cfg.vf_coef * v_loss).sum()
            (grad,) = torch.autograd.grad(loss, p)
            norm = grad.norm(dim=1, keepdim=True)
            grad = grad * (cfg.max_grad_norm / (norm + 1e-6)).clamp(max=1.0)
            step_t = step_t + 1
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad * grad
            m_hat = m / (1 - b1 ** step_t)[:, None]
            v_hat = v / (1 - b2 ** step_t)[:, None]
            theta = (theta - lr[:, None] * m_hat / (v_hat.sqrt() + eps)).detach()
    fin = torch.stack(finished)  # (T, N)
    out = []
    for i, j in enumerate(jobs):
        f = fin[:, i * E:(i + 1) * E]
        done_ret = f[~f.isnan()]
        out.append(EsResult(j.agent, theta[i].cpu(), m[i].cpu(), v[i].cpu(), int(step_t[i]),
                            float(done_ret.mean()) if done_ret.numel() else float("nan"),
                            T * E))
    return out
