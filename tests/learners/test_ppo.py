"""PPO: GAE against a reference loop, learning on an easy world, recurrent updates, evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from autoworld.envs.catalogue import load_world
from autoworld.learners.evaluation import evaluate
from autoworld.learners.policies import PolicyConfig
from autoworld.learners.ppo import PPO, PPOConfig, compute_gae


def reference_gae(rewards, values, dones, next_value, gamma, lam):
    """Plain Python loops over envs and time."""
    T, B = len(rewards), len(rewards[0])
    adv = [[0.0] * B for _ in range(T)]
    for b in range(B):
        running = 0.0
        for t in reversed(range(T)):
            nxt = next_value[b] if t == T - 1 else values[t + 1][b]
            nonterminal = 0.0 if dones[t][b] else 1.0
            delta = rewards[t][b] + gamma * nxt * nonterminal - values[t][b]
            running = delta + gamma * lam * nonterminal * running
            adv[t][b] = running
    return adv


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 1.0), (1.0, 0.0)])
def test_gae_matches_reference_loop(gamma: float, lam: float) -> None:
    g = torch.Generator().manual_seed(0)
    T, B = 13, 5
    rewards = torch.randn(T, B, generator=g, dtype=torch.float64)
    values = torch.randn(T, B, generator=g, dtype=torch.float64)
    dones = torch.rand(T, B, generator=g) < 0.2
    dones[-1, 0] = True  # an episode ending on the last step: no bootstrap
    next_value = torch.randn(B, generator=g, dtype=torch.float64)
    adv, ret = compute_gae(rewards, values, dones, next_value, gamma, lam)
    ref = torch.tensor(reference_gae(rewards.tolist(), values.tolist(), dones.tolist(),
                                     next_value.tolist(), gamma, lam), dtype=torch.float64)
    torch.testing.assert_close(adv, ref)
    torch.testing.assert_close(ret, ref + values)
    # the last step of env 0 ended: its advantage is just r - V
    assert adv[-1, 0].item() == pytest.approx((rewards[-1, 0] - values[-1, 0]).item())


def test_ppo_improves_on_empty_world() -> None:
    spec = load_world("Empty-6x6")
    cfg = PPOConfig(num_envs=64, num_steps=16, learning_rate=2.5e-3, anneal_lr=False,
                    policy=PolicyConfig(trunk="mlp"))
    iters = 30
    learner = PPO(spec, cfg, total_steps=64 * 16 * iters, seed=0)
    before = evaluate(learner.policy, spec, episodes_per_level=4, seed=1)
    for _ in range(iters):
        stats = learner.iterate()
    after = evaluate(learner.policy, spec, episodes_per_level=4, seed=1)
    assert learner.global_step == 64 * 16 * iters
    assert after.normalized_gain > before.normalized_gain + 0.3, (before, after)
    assert after.normalized > 0.8
    assert stats["entropy"] < 1.9  # the policy sharpened (uniform: log 7 = 1.95)


@pytest.mark.parametrize("needs_reward", [True, False])
def test_an_update_without_reward_keeps_the_policy_head_when_asked(needs_reward: bool) -> None:
    # DoorKey-8x8 pays only at the goal, behind a key and a door: 8 steps never reach it
    cfg = PPOConfig(num_envs=16, num_steps=8, num_minibatches=2, ent_coef=0.0,
                    pg_needs_reward=needs_reward)
    learner = PPO(load_world("DoorKey-8x8"), cfg, total_steps=16 * 8, seed=0)
    head = learner.policy.actor.weight.detach().clone()
    trunk = learner.policy.encoder.dense[0].weight.detach().clone()
    stats = learner.iterate()
    assert stats["episodes"] == 0
    assert not torch.equal(learner.policy.encoder.dense[0].weight, trunk)  # the value loss
    # no reward, no entropy bonus: the policy term alone moves the actor head
    assert torch.equal(learner.policy.actor.weight, head) == needs_reward


def test_an_update_with_reward_trains_the_policy_head() -> None:
    cfg = PPOConfig(num_envs=64, num_steps=16, num_minibatches=2, ent_coef=0.0,
                    pg_needs_reward=True)
    learner = PPO(load_world("Empty-6x6"), cfg, total_steps=64 * 16, seed=0)
    head = learner.policy.actor.weight.detach().clone()
    stats = learner.iterate()
    assert stats["episodes"] > 0 and stats["episode_return"] > 0  # some reached the goal
    assert not torch.equal(learner.policy.actor.weight, head)


def test_recurrent_ppo_runs_and_resumes_state() -> None:
    spec = load_world("FoggyRooms-11x11")
    cfg = PPOConfig(num_envs=8, num_steps=8, num_minibatches=2, update_epochs=1,
                    policy=PolicyConfig(trunk="mlp", recurrent=True, hidden=32))
    learner = PPO(spec, cfg, total_steps=8 * 8 * 2, seed=0)
    stats = learner.iterate()
    assert all(isinstance(v, float | int) for v in stats.values())
    twin = PPO(spec, cfg, total_steps=8 * 8 * 2, seed=0)
    twin.load_state_dict(learner.state_dict())
    learner.iterate()
    twin.iterate()
    for (k, a), b in zip(learner.policy.state_dict().items(),
                         twin.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_truncation_is_bootstrapped() -> None:
    """With a world whose episodes only end by time limit, the stored reward of the truncating
    step includes gamma * V(final obs); here checked through a zero-reward world's returns."""
    from tests.conftest import make_spec

    spec = make_spec(max_steps=4, name="NoGoal")
    cfg = PPOConfig(num_envs=4, num_steps=8, update_epochs=1, num_minibatches=1,
                    policy=PolicyConfig(trunk="mlp"))
    learner = PPO(spec, cfg, total_steps=32, seed=0)
    with torch.no_grad():
        learner.policy.critic.bias.fill_(1.0)  # V = 1 + w.h: non-zero bootstraps
    stats = learner.iterate()
    # returns of a zero-reward world come only from bootstraps; without them V targets are 0
    assert stats["episodes"] == 8 and stats["episode_return"] == 0.0
    assert stats["value_loss"] > 0.0


def test_random_policy_scores_near_random_baseline() -> None:
    spec = load_world("DoorKey-8x8")

    def uniform(obs):
        n = obs["image"].shape[0]
        return torch.randint(0, 7, (n,), generator=gen)

    gen = torch.Generator().manual_seed(0)
    res = evaluate(uniform, spec, episodes_per_level=16, seed=0)
    assert res.episodes == 5 * 16
    assert len(res.level_returns) == len(res.optimal_returns) == 5
    assert abs(res.normalized_gain) < 0.15 and res.normalized < 0.2


def test_evaluation_on_a_larger_bank_scores_every_level_against_its_oracle() -> None:
    from autoworld.envs.grid.levels import bank
    from autoworld.envs.grid.oracle import solve

    spec = load_world("Empty-6x6")
    gen = torch.Generator().manual_seed(0)

    def uniform(obs):
        return torch.randint(0, 7, (obs["image"].shape[0],), generator=gen)

    res = evaluate(uniform, spec, "test", episodes_per_level=2, seed=0, levels=12)
    b = bank(spec, "test", size=12)
    assert res.episodes == 24 and len(res.level_returns) == 12
    assert res.optimal_returns == [solve(spec, b.level(i), plan=False).optimal_return
                                   for i in range(12)]
    assert all(r <= o + 1e-9 for r, o in zip(res.level_returns, res.optimal_returns,
                                             strict=True))


def test_minibatches_split_evenly_and_never_leave_a_lone_sample() -> None:
    from autoworld.learners.ppo import minibatch_slices

    for n, k in ((128, 4), (97, 4), (97, 1), (5, 4), (3, 8), (1, 4)):
        sizes = [s.stop - s.start for s in minibatch_slices(n, k)]
        assert sum(sizes) == n and len(sizes) == min(n, k), (n, k, sizes)
        assert max(sizes) - min(sizes) <= 1
    assert [(s.start, s.stop) for s in minibatch_slices(97, 4)] == [(0, 25), (25, 49), (49, 73),
                                                                  (73, 97)]


@pytest.mark.parametrize("num_steps, num_minibatches", [(97, 4), (3, 8)])
def test_odd_batch_sizes_keep_the_weights_finite(num_steps: int, num_minibatches: int) -> None:
    # 97 samples in minibatches of 24 used to leave a last minibatch of one sample, whose
    # advantage std is NaN: every weight became NaN, silently
    cfg = PPOConfig(num_envs=1, num_steps=num_steps, num_minibatches=num_minibatches,
                    pg_needs_reward=False, policy=PolicyConfig(trunk="mlp"))
    learner = PPO(load_world("Empty-6x6"), cfg, total_steps=num_steps, seed=0)
    stats = learner.iterate()
    assert all(torch.isfinite(p).all() for p in learner.policy.parameters())
    assert math.isfinite(stats["policy_loss"])
