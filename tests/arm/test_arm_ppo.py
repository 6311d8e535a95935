"""PPO on arm worlds (``learners.arm_ppo``): the Gaussian loss, learning on an easy reach world,
exact resumption, and the ``arm-ppo`` registry entry."""

from __future__ import annotations

import json
import math

import pytest
import torch

from autoworld.envs.arm.spec import arm_world
from autoworld.learners.arm_bc import random_actor, rollout
from autoworld.learners.arm_ppo import (
    ArmPPO,
    ArmPPOConfig,
    gaussian_log_prob,
    ppo_actor,
    run_arm_ppo,
)
from autoworld.learners.methods import METHODS, MethodError, MethodOptions

pytestmark = pytest.mark.usefixtures("one_thread")


def test_gaussian_log_prob_matches_torch():
    mean, log_std = torch.randn(5, 3), torch.randn(3) * 0.3
    action = torch.randn(5, 3)
    ref = torch.distributions.Normal(mean, log_std.exp()).log_prob(action).sum(-1)
    assert torch.allclose(gaussian_log_prob(mean, log_std, action), ref, atol=1e-5)


def test_rollout_is_batched_clipped_and_bootstraps_time_limits():
    spec = arm_world("reach", "arm3", max_steps=12)
    cfg = ArmPPOConfig(num_envs=16, num_steps=30, num_minibatches=2, update_epochs=1,
                       init_log_std=1.0)
    learner = ArmPPO(spec, cfg, total_steps=16 * 30)
    seen = []
    step = learner.engine.step

    def spy(action):
        seen.append(action)
        return step(action)

    learner.engine.step = spy
    stats = learner.iterate()
    assert len(seen) == 30 and all(a.shape == (16, 3) for a in seen)
    assert max(float(a.abs().max()) for a in seen) <= 1.0  # wide Gaussian, clipped to bounds
    assert stats["episodes"] >= 16  # 12-step episodes ended inside the 30-step rollout
    assert stats["episode_length"] <= 12
    assert math.isfinite(stats["value_loss"]) and learner.global_step == 16 * 30


def test_joint_velocity_interface_sends_joints_and_grip():
    cfg = ArmPPOConfig(num_envs=4, num_steps=4, num_minibatches=1, update_epochs=1,
                       interface="joint_velocity")
    learner = ArmPPO(arm_world("pick_place", "arm5"), cfg, total_steps=16)
    seen = []
    step = learner.engine.step
    learner.engine.step = lambda a: seen.append(a.shape) or step(a)
    learner.iterate()
    assert learner.engine.interface == "joint_velocity" and seen == [(4, 8)] * 4


def test_arm_ppo_beats_random_on_reach():
    spec = arm_world("reach", "arm3", max_steps=60)
    cfg = ArmPPOConfig(num_envs=32, num_steps=32, learning_rate=3e-3)
    learner = ArmPPO(spec, cfg, total_steps=14 * 32 * 32, seed=0)
    while learner.iteration < learner.num_iterations:
        learner.iterate()
    kw = {"seed": 123, "device": "cpu"}
    trained = rollout(ppo_actor(learner.policy), [learner.spec], 48, **kw)
    rand = rollout(random_actor(123), [learner.spec], 48, **kw)
    assert trained.mean_return > rand.mean_return + 0.5, (trained, rand)
    assert trained.success >= rand.success + 0.3, (trained, rand)


def test_state_dict_resumes_exactly(tmp_path):
    from autoworld.learners.checkpoint import load_state, save_state

    spec = arm_world("reach", "arm2", max_steps=20)
    cfg = ArmPPOConfig(num_envs=8, num_steps=16, num_minibatches=2, update_epochs=2)
    whole = ArmPPO(spec, cfg, total_steps=4 * 128, seed=5)
    for _ in range(4):
        whole.iterate()
    first = ArmPPO(spec, cfg, total_steps=4 * 128, seed=5)
    first.iterate()
    first.iterate()
    save_state(tmp_path / "state.pt", first.state_dict())
    second = ArmPPO(spec, cfg, total_steps=4 * 128, seed=5)
    second.load_state_dict(load_state(tmp_path / "state.pt"))
    second.iterate()
    second.iterate()
    for a, b in zip(whole.policy.state_dict().values(), second.policy.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    assert torch.equal(whole.engine.state.q, second.engine.state.q)


def test_run_dir_resume_after_a_kill_gives_the_uninterrupted_result(tmp_path, monkeypatch):
    opts = MethodOptions(eval_episodes=1)
    cfg = ArmPPOConfig(num_envs=8, num_steps=16, num_minibatches=2, update_epochs=1)
    kw = {"steps": 4 * 128, "seed": 2, "options": opts, "config": cfg, "checkpoint_every": 2}
    world = arm_world("reach", "arm2", max_steps=30)
    whole = run_arm_ppo(world, run_dir=tmp_path / "whole", **kw)

    real = ArmPPO.iterate

    def dies_at_three(self):
        if self.iteration == 3:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(ArmPPO, "iterate", dies_at_three)
    with pytest.raises(KeyboardInterrupt):
        run_arm_ppo(world, run_dir=tmp_path / "cut", **kw)
    monkeypatch.setattr(ArmPPO, "iterate", real)
    resumed = run_arm_ppo(world, run_dir=tmp_path / "cut", resume=True, **kw)
    assert resumed.env_steps == whole.env_steps == 4 * 128
    assert resumed.mean_return == whole.mean_return
    assert resumed.initial_score == whole.initial_score
    metrics = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    lines = [json.loads(ln) for ln in metrics]
    assert [r["iteration"] for r in lines] == [1, 2, 3, 4]
    assert (tmp_path / "cut" / "policy.pt").is_file()
    with pytest.raises(MethodError, match="another run"):
        run_arm_ppo(world, run_dir=tmp_path / "cut", resume=True, **{**kw, "seed": 3})


def test_registry_entry_scores_against_the_expert():
    spec = METHODS["arm-ppo"]
    assert spec.family == "arm" and spec.selection == "best"
    res = spec.run("ArmReach-arm2", steps=256, num_envs=8, seed=0,
                   options=MethodOptions(eval_episodes=1))
    assert res.method == "arm-ppo" and res.env_steps == 256
    assert res.extra["expert_return"] > res.extra["random_return"]
    assert res.score == pytest.approx(res.mean_return / res.extra["expert_return"])
    gain = ((res.mean_return - res.extra["random_return"])
            / (res.extra["expert_return"] - res.extra["random_return"]))
    assert res.normalized_gain == pytest.approx(gain)
