"""The batched arm engine: contract shapes, determinism, autoreset and the task rules."""

from __future__ import annotations

import pytest
import torch

from autoworld.envs.arm.embodiment import JOINT_DESC_DIM, N_MAX, standard_embodiments
from autoworld.envs.arm.engine import TASK_DIM, ArmEngine
from autoworld.envs.arm.spec import TASKS, arm_world
from autoworld.errors import EngineError, SpecError

MIXED = [arm_world(t, a) for t, a in zip(TASKS, ["arm2", "arm3", "arm4", "arm5", "arm6",
                                                   "arm7", "arm3_long_base"], strict=True)]


def _rollout(eng: ArmEngine, steps: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        obs, r, term, trunc, info = eng.step(torch.rand(eng.num_envs, eng.action_dim,
                                                        generator=g) * 2 - 1)
        out += [obs["joint_state"], obs["task"], r, term, trunc]
    return out


def test_contract_shapes_and_dtypes():
    eng = ArmEngine(MIXED, num_envs=14, seed=0)
    assert eng.action_dim == 3 and eng.world_ids.tolist() == [i % 7 for i in range(14)]
    obs = eng.reset(seed=1)
    assert set(obs) == {"joint_state", "joint_desc", "joint_mask", "ee", "task"}
    assert obs["joint_state"].shape == (14, N_MAX, 3)
    assert obs["joint_desc"].shape == (14, N_MAX, JOINT_DESC_DIM)
    assert obs["joint_mask"].dtype == torch.bool and obs["joint_mask"].shape == (14, N_MAX)
    assert obs["ee"].shape == (14, 3) and obs["task"].shape == (14, TASK_DIM)
    assert obs["joint_mask"].sum(1)[:7].tolist() == [2, 3, 4, 5, 6, 7, 3]
    # zero past n_joints; one-hot task in the first 7 features
    assert (obs["joint_state"][0, 2:] == 0).all() and (obs["joint_desc"][0, 2:] == 0).all()
    assert obs["task"][:7, :7].argmax(1).tolist() == list(range(7))
    obs, r, term, trunc, info = eng.step(torch.zeros(14, 3))
    assert r.dtype == torch.float32 and term.dtype == torch.bool and trunc.dtype == torch.bool
    assert info["success"].shape == (14,) and set(info["final_obs"]) == set(obs)
    pts = eng.forward_kinematics(eng.state.q)
    assert pts.shape == (14, N_MAX + 1, 2) and eng.jacobian(eng.state.q).shape == (14, 2, N_MAX)
    assert torch.allclose(pts[:, -1], obs["ee"][:, :2])
    desc = standard_embodiments()["arm4"].joint_desc()
    assert torch.equal(obs["joint_desc"][2], desc) and desc[3, 5] == 1 and desc[4].abs().sum() == 0


def test_same_seed_same_trajectories_and_other_seeds_differ():
    runs = []
    for seed in (5, 5, 6):
        eng = ArmEngine(MIXED, num_envs=21, seed=seed)
        runs.append(_rollout(eng, 60))
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], runs[2], strict=True))
    # reset(seed) restarts the same stream
    eng = ArmEngine(MIXED, num_envs=21, seed=9)
    eng.reset(seed=5)
    assert all(torch.equal(a, b) for a, b in zip(runs[0], _rollout(eng, 60), strict=True))


def test_envs_of_one_stream_meet_the_same_scenes():
    """``reset(seed, streams=...)``: envs given one stream index draw the same scene sequence
    (the common random numbers an ES population is scored on); the default keys by env."""
    eng = ArmEngine(arm_world("reach", "arm3"), num_envs=6, seed=0)
    for _ in range(2):  # the first scene and, after a reset of all, the next one
        obs = eng.reset(seed=4, streams=torch.arange(3).repeat(2))
        assert torch.equal(obs["task"][:3], obs["task"][3:])
        assert not torch.equal(obs["task"][0], obs["task"][1])
        obs = eng.reset()
        assert torch.equal(obs["task"][:3], obs["task"][3:])
    default = eng.reset(seed=4)
    assert torch.equal(default["task"][:3], eng.reset(seed=4, streams=torch.arange(6))["task"][:3])
    assert not torch.equal(default["task"][:3], default["task"][3:])
    with pytest.raises(EngineError, match="one stream index per env"):
        eng.reset(seed=4, streams=torch.arange(3))
    with pytest.raises(EngineError, match="needs a seed"):
        eng.reset(streams=torch.arange(6))


def test_velocity_is_not_observed_unless_asked():
    eng = ArmEngine(MIXED[:2], num_envs=2)
    assert "joint_vel" not in eng.reset(seed=0)
    abl = ArmEngine(MIXED[:2], num_envs=2, obs_velocity=True)
    abl.reset(seed=0)
    obs, *_ = abl.step(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert obs["joint_vel"].shape == (2, N_MAX) and obs["joint_vel"].abs().sum() > 0


def test_same_step_autoreset_returns_the_final_observation():
    w = arm_world("reach", "arm3", max_steps=5)
    eng = ArmEngine(w, num_envs=3, seed=0)
    for _ in range(5):
        before = eng.state.pts[:, -1].clone()
        obs, r, term, trunc, info = eng.step(torch.tensor([[1.0, 0.0, 0.0]] * 3))
    assert trunc.all() and not term.any()
    final_ee = info["final_obs"]["ee"][:, :2]
    assert (final_ee - before).norm(dim=1).max() < 0.05  # one step beyond the last state
    assert (obs["ee"][:, :2] - final_ee).norm(dim=1).min() > 1e-3  # a new episode began
    assert (eng.state.t == 0).all() and (eng.state.ep == 1).all()


def test_heterogeneous_interfaces_are_refused_and_bad_actions_named():
    with pytest.raises(EngineError, match="same action interface"):
        ArmEngine([arm_world("reach", "arm2"),
                   arm_world("reach", "arm2", interface="joint_velocity")])
    eng = ArmEngine(arm_world("reach", "arm2"), num_envs=2)
    with pytest.raises(EngineError, match="shape"):
        eng.step(torch.zeros(2, N_MAX))
    with pytest.raises(EngineError, match="split"):
        ArmEngine(arm_world("reach", "arm2"), split="test")
    with pytest.raises(SpecError, match="gripper"):
        arm_world("pick_place", "arm5_nogrip")
    with pytest.raises(SpecError, match="components"):
        arm_world("push", "arm3", components=[{"kind": "goal"}])


def _place(eng: ArmEngine, **fields) -> None:
    for k, v in fields.items():
        getattr(eng.state, k)[:] = torch.as_tensor(v, dtype=getattr(eng.state, k).dtype)
    eng.state.phi = eng._potential(eng.state)


def _toward(eng: ArmEngine, target, grip: float = -1.0, steps: int = 60, speed: float = 1.0):
    """Drive the end-effector straight at ``target``; returns the step infos."""
    infos = []
    for _ in range(steps):
        ee = eng.state.pts[:, -1]
        d = torch.as_tensor(target, dtype=torch.float32) - ee
        a = (d / eng.p["max_ee_step"][:, None]).clamp(-speed, speed)
        obs, r, term, trunc, info = eng.step(torch.cat((a, torch.full((1, 1), grip)), 1))
        infos.append((r, term, info))
        if bool(term[0] | trunc[0]):
            break
    return infos


def test_obstacle_blocks_the_end_effector():
    eng = ArmEngine(arm_world("reach_around", "arm4"), num_envs=1, seed=0)
    s = eng.state
    ee = s.pts[0, -1]
    _place(eng, aux=[(ee + torch.tensor([0.1, 0.0])).tolist()], aux_r=[0.05])
    infos = _toward(eng, (ee + torch.tensor([0.3, 0.0]))[None], steps=20)
    assert (eng.state.pts[0, -1] - eng.state.aux[0]).norm() >= 0.05
    assert any(float(r[0]) < 0 for r, _, _ in infos)  # blocked moves cost


def test_magnet_picks_carries_and_drops_the_disk():
    eng = ArmEngine(arm_world("pick_place", "arm3"), num_envs=1, seed=0)
    ee = eng.state.pts[0, -1]
    disk = ee + torch.tensor([0.0, -0.12])
    goal = ee + torch.tensor([-0.15, -0.12])
    _place(eng, disk=[disk.tolist()], goal=[goal.tolist()])
    _toward(eng, disk[None], grip=1.0, steps=15)
    assert bool(eng.state.held[0]) and torch.allclose(eng.state.disk[0], eng.state.pts[0, -1])
    infos = _toward(eng, goal[None], grip=1.0, steps=30)
    assert not any(bool(t[0]) for _, t, _ in infos)  # held over the goal: not yet a success
    r, term, info = _toward(eng, goal[None], grip=-1.0, steps=1)[0]
    assert bool(term[0]) and bool(info["success"][0])


def test_push_moves_the_disk_and_wipe_covers_cells():
    eng = ArmEngine(arm_world("push", "arm4"), num_envs=1, seed=0)
    ee = eng.state.pts[0, -1]
    _place(eng, disk=[(ee + torch.tensor([-0.1, 0.0])).tolist()],
           goal=[(ee + torch.tensor([-0.4, 0.0])).tolist()])
    start = eng.state.disk[0].clone()
    _toward(eng, (ee + torch.tensor([-0.2, 0.0]))[None], steps=10)
    assert float(start[0] - eng.state.disk[0, 0]) > 0.05  # shoved along -x
    eng = ArmEngine(arm_world("wipe", "arm4"), num_envs=1, seed=0)
    centre = eng.state.goal[0].clone()
    assert int(eng.state.cover.sum()) == 0
    _toward(eng, centre[None], steps=60)
    assert bool(eng.state.cover[0, 4])  # the centre cell
    assert int(eng.state.cover.sum()) < 9


def test_dwell_slow_spills_when_too_fast():
    eng = ArmEngine(arm_world("dwell_slow", "arm4"), num_envs=1, seed=0)
    pour = eng.state.aux[0].clone()
    _toward(eng, pour[None], steps=80)
    for _ in range(12):  # hold
        eng.step(torch.tensor([[0.0, 0.0, -1.0]]))
    assert int(eng.state.phase[0]) == 2
    r, term, info = _toward(eng, eng.state.goal, steps=1)[0]  # full speed: spills
    assert bool(term[0]) and bool(info["spill"][0]) and not bool(info["success"][0])
    assert float(r[0]) < -0.5


def test_shifted_scenes_differ_from_train_scenes():
    w = arm_world("reach", "arm4")
    train = ArmEngine(w, num_envs=1).bank["goal"]
    shifted = ArmEngine(w, num_envs=1, split="shifted").bank["goal"]
    ang_t = torch.atan2(train[:, 1], train[:, 0]).abs()
    ang_s = torch.atan2(shifted[:, 1], shifted[:, 0]).abs()
    assert ang_t.max() <= w.scene.sector + 1e-4 and ang_s.min() > w.scene.sector
    # a scene id names the same scene in every engine
    a = ArmEngine(w, num_envs=4, seed=1, num_scenes=8)
    b = ArmEngine(w, num_envs=4, seed=2, num_scenes=8)
    for k in range(8):
        ia, ib = (a.bank["scene_key"] == k), (b.bank["scene_key"] == k)
        assert torch.equal(a.bank["goal"][ia], b.bank["goal"][ib])


def test_a_compiled_arm_engine_raises_the_recompile_limit():
    """Every arm engine's step is one code object: a compiled one lets dynamo keep 64
    specializations (many arms in one process), as compiled grid engines do."""
    import torch._dynamo

    with torch._dynamo.config.patch(recompile_limit=8):  # restored on exit
        ArmEngine(MIXED, num_envs=4, seed=0, compile=True)  # compiles lazily, at the first step
        assert torch._dynamo.config.recompile_limit >= 64
