"""POET's batched PPO honours ``PPOConfig.pg_needs_reward`` per pair."""

from __future__ import annotations

import torch

from autoworld.envs.catalogue import load_world
from autoworld.learners.evaluation import oracle_values
from autoworld.learners.ppo import PPOConfig
from autoworld.poet.executor import LocalExecutor
from autoworld.poet.policy import PoetPolicy
from autoworld.poet.rollout import EsJob, WorldEntry


def _actor(policy: PoetPolicy, theta: torch.Tensor) -> torch.Tensor:
    a, _ = policy.offsets["w2"]
    _, b = policy.offsets["b2"]
    return theta[a:b]


def test_a_pair_without_reward_gets_no_policy_term_and_the_others_are_untouched():
    policy = PoetPolicy(11, 2, 8, value_head=True)
    worlds = {}
    # "easy": Empty-6x6's goal is reached by chance within 20 steps; "hard": DoorKey-8x8 needs a
    # key, a door and the goal, and its rollout of 20 steps sees no reward
    for key, name in (("easy", "Empty-6x6"), ("hard", "DoorKey-8x8")):
        spec = load_world(name)
        worlds[key] = WorldEntry(spec, *oracle_values(spec, "validation"))

    def run(needs_reward: bool, steps: int):
        # ent_coef=0: without a policy term, nothing but the value loss moves the network, and
        # the actor head (w2, b2) gets no gradient at all
        cfg = PPOConfig(num_envs=16, num_steps=steps, num_minibatches=2, update_epochs=2,
                        ent_coef=0.0, pg_needs_reward=needs_reward)
        jobs = []
        for i, w in enumerate(("easy", "hard")):
            th = policy.init(i)
            z = torch.zeros_like(th)
            jobs.append(EsJob(f"a{i}", w, th, z, z.clone(), 0, 0.1, 1e-2, 11 + i,
                              train_levels=16))
        return jobs, LocalExecutor(policy).ppo_steps(worlds, jobs, cfg)

    jobs, on = run(True, 20)
    _, off = run(False, 20)
    easy, hard = 0, 1
    # the only reward of both worlds ends the episode: a finished episode is a reward seen
    assert on[easy].mean_return > 0
    assert on[hard].mean_return != on[hard].mean_return  # nan: no episode ended, no reward
    # the reward-free pair: actor head frozen with the option, moved without it
    torch.testing.assert_close(_actor(policy, on[hard].theta), _actor(policy, jobs[hard].theta))
    assert not torch.equal(_actor(policy, off[hard].theta), _actor(policy, jobs[hard].theta))
    assert not torch.equal(on[hard].theta, jobs[hard].theta)  # the value head still learned
    # the pair that saw a reward is updated the same way either way
    assert not torch.equal(_actor(policy, on[easy].theta), _actor(policy, jobs[easy].theta))
    torch.testing.assert_close(on[easy].theta, off[easy].theta)
