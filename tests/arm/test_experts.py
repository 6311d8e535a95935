"""Scripted experts and demonstration data: success, multimodality, datasets on disk."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from autoworld.envs.arm.demos import DemoSet, collect_demos
from autoworld.envs.arm.embodiment import standard_embodiments
from autoworld.envs.arm.engine import ArmEngine
from autoworld.envs.arm.experts import Operator, ScriptedExpert, standard_operators
from autoworld.envs.arm.spec import TASKS, arm_world
from autoworld.errors import EngineError, SpecError

ARMS = sorted(standard_embodiments())


def _success_by_world(worlds, per_world: int, interface_seed: int = 0) -> torch.Tensor:
    eng = ArmEngine(worlds, num_envs=len(worlds) * per_world, seed=interface_seed)
    expert = ScriptedExpert(eng, standard_operators(), seed=interface_seed)
    B = eng.num_envs
    done = torch.zeros(B, dtype=torch.bool)
    succ = torch.zeros(B, dtype=torch.bool)
    with torch.no_grad():
        for _ in range(max(w.max_steps for w in worlds)):
            _, _, term, trunc, info = eng.step(expert.act())
            ended = ~done & (term | trunc)
            succ |= ended & info["success"]
            done |= ended
            if bool(done.all()):
                break
    return torch.stack([succ[eng.world_ids == i].float().mean() for i in range(len(worlds))])


@pytest.mark.slow
def test_expert_succeeds_on_every_task_and_embodiment():
    worlds = [arm_world(t, a) for t in TASKS for a in ARMS
              if not (t == "pick_place" and not standard_embodiments()[a].gripper)]
    rates = _success_by_world(worlds, per_world=4)
    # >= 95% over all episodes, and no world below 75% (4 episodes each: one miss allowed)
    assert float(rates.mean()) >= 0.95, rates
    assert float(rates.min()) >= 0.75, {w.name: float(r) for w, r in zip(worlds, rates,
                                                                          strict=True) if r < 1}


def test_expert_succeeds_on_every_task_at_the_extremes():
    """The fast companion of the slow test above: the smallest and largest arms."""
    worlds = [arm_world(t, a) for t in TASKS for a in ("arm2", "arm7")]
    assert float(_success_by_world(worlds, per_world=2, interface_seed=4).min()) == 1.0


def test_expert_drives_the_joint_velocity_interface():
    worlds = [arm_world(t, "arm4", interface="joint_velocity")
              for t in ("reach", "pick_place", "wipe")]
    assert float(_success_by_world(worlds, per_world=3).min()) == 1.0


@pytest.fixture(scope="module")
def rate_demos() -> DemoSet:
    """Pure action-rate multimodality: one task, three operators."""
    ops = [Operator("slow", 0.6), Operator("steady", 1.0), Operator("fast", 1.6)]
    return collect_demos([arm_world("via_point", "arm3"), arm_world("dwell_slow", "arm4")],
                         60, ops, seed=0, num_scenes=10)


def _path_length(d: DemoSet) -> torch.Tensor:
    step = (d.ee[:, 1:, :2] - d.ee[:, :-1, :2]).norm(dim=-1) * d.valid[:, 1:]
    return step.sum(1)


def test_operators_share_paths_but_differ_in_rate(rate_demos):
    d = rate_demos.subset([i for i, t in enumerate(rate_demos.task_name) if t == "via_point"])
    assert bool(d.success.all())
    rate = d.ee_action[..., :2].norm(dim=-1)  # (E, T)
    moving = d.valid & (rate > 0.05)
    mean_rate = torch.stack([rate[moving & (d.operator == o)[:, None]].mean() for o in range(3)])
    lengths = torch.stack([d.length[d.operator == o].float().mean() for o in range(3)])
    # rates scale with the operator's speed ...
    assert mean_rate[0] < mean_rate[1] < mean_rate[2]
    assert float(mean_rate[2] / mean_rate[0]) == pytest.approx(1.6 / 0.6, rel=0.15)
    assert float(lengths[0] / lengths[2]) > 1.8
    # ... along the same paths: in one scene, the operators' paths agree in length (to the
    # few per cent that step size changes where a waypoint counts as reached)
    paths = _path_length(d)
    same_scene: dict[int, list[int]] = {}
    for i in range(len(d)):
        same_scene.setdefault(int(d.scene[i]), []).append(i)
    compared = 0
    for idx in same_scene.values():
        goals = d.task[idx, 0, 7:9]
        assert torch.allclose(goals, goals[0].expand_as(goals))
        if len(set(d.operator[idx].tolist())) > 1:
            assert float(paths[idx].max() / paths[idx].min()) < 1.1
            compared += 1
    assert compared >= 3


def test_task_required_slow_phase_is_kept_for_every_operator(rate_demos):
    d = rate_demos.subset([i for i, t in enumerate(rate_demos.task_name) if t == "dwell_slow"])
    assert bool(d.success.all())
    slow = d.valid & (d.task[..., 13] > 0.5)  # slow-phase flag
    rate = d.ee_action[..., :2].norm(dim=-1)
    per_op = [rate[slow & (d.operator == o)[:, None]] for o in range(3)]
    assert all(len(r) > 0 for r in per_op)
    cap = 0.7 * 0.012 / 0.04  # SLOW_MARGIN x slow_speed / max_ee_step
    for r in per_op:
        assert float(r.max()) <= cap + 1e-5
    # the operators' slow phases run at one rate (the task's), not at their own
    medians = torch.stack([r.median() for r in per_op])
    assert float(medians.max() - medians.min()) < 1e-4


def test_spatial_demos_pass_left_and_right():
    d = collect_demos([arm_world("reach_around", "arm4")], 24, [Operator("steady", 1.0)],
                      seed=1)
    assert bool(d.success.all())
    assert set(d.side.tolist()) == {-1, 1}
    # geometry: the side of the start-goal line where the path swings out
    start, goal = d.ee[:, 0, :2], d.task[:, 0, 7:9]
    u = (goal - start) / (goal - start).norm(dim=1, keepdim=True)
    rel = d.ee[..., :2] - start[:, None]
    lateral = u[:, None, 0] * rel[..., 1] - u[:, None, 1] * rel[..., 0]  # > 0: left of u
    extreme = torch.where(d.valid, lateral, 0.0)
    swing = torch.where(extreme.max(1).values > -extreme.min(1).values, -1, 1)
    assert torch.equal(swing, d.side)
    for side in ("left", "right"):
        one = collect_demos([arm_world("reach_around", "arm3")], 4, [Operator("a", 1.0)],
                            seed=2, side=side)
        assert set(one.side.tolist()) == {-1 if side == "left" else 1}


def test_demo_set_saves_loads_and_subsets(tmp_path, rate_demos):
    d = rate_demos.subset(slice(0, 6))
    assert len(d) == 6 and d.joint_state.shape[0] == 6 and len(d.world) == 6
    path = d.save(tmp_path / "demos")
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "tensors.safetensors"]
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o777 & ~mask  # not mkdtemp's owner-only 0700
    again = DemoSet.load(path)
    for k in ("joint_state", "ee_action", "joint_action", "valid", "length", "side", "speed"):
        assert torch.equal(getattr(again, k), getattr(d, k)), k
    assert again.world == d.world and again.operator_names == ["slow", "steady", "fast"]
    assert json.loads((path / "meta.json").read_text())["meta"]["num_scenes"] == 10
    d.subset([0]).save(path)  # overwrite in place, nothing left behind
    assert len(DemoSet.load(path)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["demos"]
    with pytest.raises(SpecError, match="not a demo dataset"):
        DemoSet.load(tmp_path / "missing")
    # a save killed between moving the old folder aside and moving the new one in: the old
    # copy is complete, and load puts it back
    os.replace(path, tmp_path / ".demos.old-12345")
    assert len(DemoSet.load(path)) == 1 and [p.name for p in tmp_path.iterdir()] == ["demos"]
    # a later save clears what a killed one left aside
    shutil.copytree(path, tmp_path / ".demos.old-999")
    d.subset([0, 1]).save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["demos"]
    # observations never carry the operator's speed
    assert not hasattr(d, "joint_vel") and d.joint_state.shape[-1] == 3
    assert (d.joint_action.abs() <= 1 + 1e-5).all()


def test_operator_bounds_are_checked():
    with pytest.raises(EngineError, match="speed"):
        Operator("warp", 5.0)
    with pytest.raises(EngineError, match="side"):
        ScriptedExpert(ArmEngine(arm_world("reach", "arm2")), side="up")
