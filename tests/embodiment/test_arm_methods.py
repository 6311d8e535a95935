"""The arm learning methods in the registry's shape: they run and report oracle-normalized
scores against the scripted expert."""

from __future__ import annotations

import pytest

from autoworld.errors import SpecError
from autoworld.learners.arm_methods import ARM_METHODS, arm_world_arg
from autoworld.learners.methods import MethodOptions, MethodResult


def test_specs_and_world_names():
    assert [m.name for m in ARM_METHODS] == ["arm-bc", "arm-bc-debias", "arm-es", "arm-ppo"]
    assert {m.selection for m in ARM_METHODS} == {"best"}
    spec = arm_world_arg("ArmReachAround-arm4")
    assert spec.task == "reach_around" and spec.arm.n_joints == 4
    assert arm_world_arg(spec) is spec
    with pytest.raises(SpecError, match="world"):
        arm_world_arg("DoorKey-8x8")


@pytest.mark.slow
def test_arm_es_runs_and_scores_against_the_expert(tmp_path):
    spec = next(m for m in ARM_METHODS if m.name == "arm-es")
    res = spec.run("ArmReach-arm2", steps=3_000, num_envs=20, seed=0,
                   options=MethodOptions(population=4), run_dir=tmp_path)
    assert isinstance(res, MethodResult) and res.method == "arm-es"
    assert 1_500 <= res.env_steps <= 3_000 and res.extra["generations"] >= 1  # a cap
    assert res.extra["expert_return"] > res.extra["random_return"]
    assert res.score == pytest.approx(res.mean_return / res.extra["expert_return"])
    assert (tmp_path / "policy.safetensors").is_file() and (tmp_path / "result.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["arm-bc", "arm-bc-debias"])
def test_arm_bc_methods_run(name):
    pytest.importorskip("autoworld.envs.arm.demos")
    spec = next(m for m in ARM_METHODS if m.name == name)
    res = spec.run("ArmReach-arm2", steps=60, num_envs=8, seed=0,
                   options=MethodOptions(bc_levels=12))
    assert res.method == name and 0.0 <= res.success <= 1.0
    assert res.extra["debias"] == ("debias" if name.endswith("debias") else "none")
    assert res.extra["demonstrations"] >= 1 and res.extra["chunks"] >= 1


def test_a_joint_velocity_world_is_trained_as_itself_or_refused():
    from autoworld.leaderboard.bench import plan
    from autoworld.learners.arm_ppo import ArmPPOConfig, run_arm_ppo
    from autoworld.learners.methods import METHODS, MethodError

    world = "ArmReach-N3-JointVel"
    assert arm_world_arg(world).interface == "joint_velocity"
    # arm-ppo used to train the ee_delta version of the world under the joint-velocity name
    res = METHODS["arm-ppo"].run(world, steps=512, num_envs=8)
    assert res.world == world and res.extra["config"]["interface"] == "joint_velocity"
    with pytest.raises(MethodError, match="acts through 'joint_velocity'"):
        run_arm_ppo(world, steps=512, num_envs=8,
                    config=ArmPPOConfig(num_envs=8, num_steps=16, interface="ee_delta"))
    for name in ("arm-bc", "arm-es"):  # their policies emit end-effector deltas
        with pytest.raises(MethodError, match="trains end-effector-delta worlds"):
            METHODS[name].run(world, steps=64, num_envs=8)
    cells = plan(["arm-ppo", "arm-bc", "arm-es"], ["ArmReach-N3", world], 1, 100)
    assert [(c.method, c.world) for c in cells] == [
        ("arm-ppo", "ArmReach-N3"), ("arm-bc", "ArmReach-N3"), ("arm-es", "ArmReach-N3"),
        ("arm-ppo", world)]


def test_the_names_results_report_load_again():
    from autoworld.envs.arm.spec import arm_world

    made = arm_world("reach", "arm5")
    assert made.name == "ArmReach-N5"  # what results and tables call it
    assert arm_world_arg(made.name).model_dump() == made.model_dump()


def test_arm_es_scores_its_population_on_common_scenes():
    """Identical candidates score the same: every member meets the same scenes (they used to
    meet scenes k + jE, which gave four copies of one policy four different fitnesses)."""
    import torch

    from autoworld.learners import soe
    from autoworld.learners.arm_bc import make_policy
    from autoworld.learners.arm_methods import ArmPopulationEvaluator, arm_world_arg
    from autoworld.learners.xembodiment import XPolicyConfig

    policy = make_policy(XPolicyConfig(arch="mlp", head="mse", chunk=8, hidden=32, layers=1,
                                       embed_dim=8), seed=0)
    theta = soe.flat_params(policy)
    cands = [soe.Candidate(params=theta.clone()) for _ in range(4)]
    ArmPopulationEvaluator(arm_world_arg("ArmReach-arm2"), policy, episodes=4).score(cands, 0)
    assert max(c.ret for c in cands) - min(c.ret for c in cands) < 1e-5
    assert torch.isfinite(torch.tensor([c.ret for c in cands])).all()


def test_arm_rollouts_checking_for_ended_episodes_less_often_change_nothing():
    """On a GPU the arm rollouts ask every 8 steps whether all episodes ended (each question waits
    for the device); the steps run past the last end are not counted, so the results match
    asking every step (here the expert's episodes all end at step 47, between two checks)."""
    import torch

    from autoworld.learners import soe
    from autoworld.learners.arm_bc import expert_actor, make_policy, rollout
    from autoworld.learners.arm_methods import ArmPopulationEvaluator, arm_world_arg
    from autoworld.learners.xembodiment import XPolicyConfig

    world = arm_world_arg("ArmReach-arm2")
    every = rollout(expert_actor(seed=0), world, 8, seed=1, check_every=1)
    assert every.env_steps == 8 * 47 and every.success == 1.0
    assert rollout(expert_actor(seed=0), world, 8, seed=1, check_every=8) == every
    policy = make_policy(XPolicyConfig(arch="mlp", head="mse", chunk=8, hidden=32, layers=1,
                                       embed_dim=8), seed=0)
    theta = soe.flat_params(policy)
    scores = []
    for check in (1, 8):
        cands = [soe.Candidate(params=theta + 0.1 * i) for i in range(3)]
        ev = ArmPopulationEvaluator(world, policy, episodes=2)
        ev.check_every = check
        spent = ev.score(cands, 0)
        scores.append((spent, [(c.ret, c.success, c.cost) for c in cands]))
    assert scores[0] == scores[1]
    assert torch.isfinite(torch.tensor(scores[0][1])).all()
