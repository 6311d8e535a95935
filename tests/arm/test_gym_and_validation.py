"""Gymnasium adapters, registration, rendering and spec validation of the arm family."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from autoworld.envs.arm.embodiment import N_MAX
from autoworld.envs.arm.gym_env import ArmEnv, ArmVectorEnv, make_arm_vector_env
from autoworld.envs.arm.registration import (
    arm_world_rows,
    list_arm_worlds,
    load_arm_world,
    register_arm_worlds,
)
from autoworld.envs.arm.spec import TASKS, arm_world, load_arm_spec, spec_to_yaml
from autoworld.envs.arm.validation import validate_arm_spec
from autoworld.errors import CatalogueError, EngineError, SpecError

register_arm_worlds()


def test_catalogue_covers_every_task_and_registers():
    names = list_arm_worlds()
    assert {load_arm_world(n).task for n in names} == set(TASKS)
    assert {"ArmReach-N2", "ArmPickPlace-N7", "ArmReachAround-N4"} <= set(names)
    for n in names:
        assert f"autoworld/{n}-v0" in gymnasium.registry
    rows = arm_world_rows()
    assert [r["name"] for r in rows] == names
    for r in rows:
        assert set(r) == {"name", "family", "tags", "levels", "gym_id"}
        assert r["family"] == "arm" and r["levels"] == "procedural"
        assert all(isinstance(t, str) for t in r["tags"])
    assert register_arm_worlds() == []  # idempotent
    with pytest.raises(CatalogueError, match="unknown arm world"):
        load_arm_world("ArmFly-N3")


@pytest.mark.parametrize("name", list_arm_worlds())
def test_every_catalogue_world_passes_check_env(name):
    env = gymnasium.make(f"autoworld/{name}-v0", render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    obs, _ = env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (256, 256, 3)
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 5  # something is drawn


def test_single_env_episode_ends_with_its_final_observation():
    env = ArmEnv(arm_world("reach", "arm3", max_steps=4), render_mode="rgb_array", seed=0)
    obs, info = env.reset()
    assert set(obs) == {"joint_state", "joint_desc", "joint_mask", "ee", "task"}
    for _ in range(4):
        obs, r, term, trunc, info = env.step(np.array([1.0, 0.0, -1.0], dtype=np.float32))
    assert trunc and not term and "success" in info
    assert env.render().shape == (256, 256, 3)
    with pytest.raises(Exception, match="3 values"):
        env.step(np.zeros(N_MAX, dtype=np.float32))


def test_vector_env_mixed_batch_numpy_and_torch():
    envs = make_arm_vector_env(6, worlds=["ArmReach-N2", "ArmPush-N7"], seed=0)
    assert isinstance(envs, ArmVectorEnv)
    obs, info = envs.reset()
    assert obs["joint_state"].shape == (6, N_MAX, 3) and info["scene"].shape == (6,)
    obs, r, term, trunc, info = envs.step(torch.zeros(6, 3))
    assert {"final_obs", "_final_obs", "episode", "_episode", "success"} <= set(info)
    npenv = gymnasium.make_vec("autoworld/ArmWipe-N4-v0", num_envs=3,
                               vectorization_mode="vector_entry_point", numpy=True)
    obs, _ = npenv.reset(seed=1)
    assert isinstance(obs["task"], np.ndarray) and obs["task"].shape == (3, 16)
    assert npenv.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP


def test_spec_files_round_trip_and_errors_name_the_field(tmp_path):
    spec = arm_world("wipe", "arm5", max_steps=123)
    path = tmp_path / "w.yaml"
    path.write_text(spec_to_yaml(spec))
    again = load_arm_spec(path)
    assert again == spec and again.content_hash() == spec.content_hash()
    env = gymnasium.make("autoworld/ArmWorld-v0", spec=str(path))
    assert env.unwrapped.world == spec
    path.write_text(spec_to_yaml(spec).replace("max_steps: 123", "max_steps: -4"))
    with pytest.raises(SpecError, match="max_steps"):
        load_arm_spec(path)
    with pytest.raises(SpecError, match="radius_hi"):
        arm_world("reach", "arm6_short", scene={"radius_lo": 0.4, "radius_hi": 0.9})


def test_validation_reports_reachability_and_an_inexact_oracle():
    report = validate_arm_spec(arm_world("via_point", "arm4"), episodes=8)
    assert report.ok, report.errors
    assert report.oracle_is_exact is False
    assert report.expert_success == 1.0
    assert report.oracle_return > report.random_return
    assert [s.split for s in report.reachability] == ["train", "shifted"]
    assert all(s.unreachable == 0 and s.points == 2 * s.scenes for s in report.reachability)


def test_validation_flags_unreachable_targets():
    # the two-link arm cannot fold closer than 0.267 m to its base
    spec = arm_world("reach", "arm2", scene={"radius_lo": 0.15, "radius_hi": 0.8})
    report = validate_arm_spec(spec, episodes=4)
    assert not report.ok
    assert report.reachability[0].unreachable > 0
    assert "outside the reach of arm2" in report.errors[0]
    # the same scene range suits an arm that folds onto its base
    ok = validate_arm_spec(arm_world("reach", "arm3", scene={"radius_lo": 0.15,
                                                             "radius_hi": 0.8}), episodes=4)
    assert all(s.unreachable == 0 for s in ok.reachability)


def test_observations_stay_in_their_space_for_long_arms_and_velocities():
    from autoworld.envs.arm.spec import ArmWorldSpec, EmbodimentSpec

    # links up to 2.0 each are legal: a 3.0-long arm reached past the old +-2.0 bound
    emb = EmbodimentSpec(name="big", link_lengths=(1.5, 1.5),
                         joint_limits=((-3.14159, 3.14159), (-2.6, 2.6)), vel_limits=(0.15, 0.15))
    big = ArmWorldSpec(**{**arm_world("reach", "arm2").model_dump(), "embodiment": emb.model_dump(),
                          "name": "BigReach"})
    env = ArmEnv(big)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    check_env(env, skip_render_check=True)
    # joint velocities are exactly within +-1 (a rounding hair used to push them past it)
    env = ArmEnv(arm_world("reach", "arm3"), obs_velocity=True)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(300):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        if terminated or truncated:
            env.reset()


def test_a_nan_action_is_an_error_not_a_poisoned_episode():
    from autoworld.errors import EngineError

    env = ArmEnv(arm_world("reach", "arm3"))
    env.reset(seed=0)
    with pytest.raises(EngineError, match="finite"):
        env.step(np.array([np.nan, 0.0, 0.0], dtype=np.float32))


def test_the_last_frame_of_an_episode_shows_its_final_state():
    world = arm_world("wipe", "arm3")
    env = ArmEnv(world, render_mode="rgb_array")
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(world.max_steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    # the state after the last step, before the reset (it was the one before the last step,
    # with only the arm's pose updated: a stale disk, wipe cover and via flag)
    assert int(env._ended.t[0]) == world.max_steps or terminated
    assert env.render().shape == (256, 256, 3)
    env.reset()
    assert env._ended is None


def test_a_constructor_seed_starts_the_episode_reset_with_that_seed_starts():
    """``ArmEnv(w, seed=s).reset()`` is ``reset(seed=s)``: it used to skip the first scene of
    the stream. The same for the vector env."""
    w = load_arm_world("ArmReach-N3")
    seeded, plain = ArmEnv(w, seed=3), ArmEnv(w)
    assert [seeded.reset()[1], seeded.reset()[1]] == [plain.reset(seed=3)[1], plain.reset()[1]]
    vs, vp = ArmVectorEnv(w, 4, seed=3), ArmVectorEnv(w, 4)
    a, b = vs.reset()[0], vp.reset(seed=3)[0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a masked first reset starts the masked envs there too
    vm = ArmVectorEnv(w, 4, seed=3)
    c = vm.reset(options={"reset_mask": np.array([True, False, False, False])})[0]
    assert torch.equal(c["ee"][0], b["ee"][0])


def test_a_long_arm_is_drawn_whole():
    """The frame scales with the arm's reach: a 3 m arm stretched out used to leave the frame
    (it showed 1.1 m from the base)."""
    from autoworld.envs.arm.spec import ArmWorldSpec, EmbodimentSpec

    emb = EmbodimentSpec(name="big", link_lengths=(1.5, 1.5),
                         joint_limits=((-3.14159, 3.14159), (-2.6, 2.6)), vel_limits=(0.15, 0.15))
    big = ArmWorldSpec(**{**arm_world("reach", "arm2").model_dump(), "embodiment": emb.model_dump(),
                          "name": "BigReach"})
    env = ArmEnv(big, render_mode="rgb_array", size=128)
    env.reset(seed=0)
    frame = env.render()
    rim = (200, 194, 180)  # the outline of the workspace disk (radius = the reach)
    on_rim = np.all(frame == rim, axis=-1)
    assert on_rim.any()
    border = np.concatenate([on_rim[0], on_rim[-1], on_rim[:, 0], on_rim[:, -1]])
    assert not border.any()  # the whole workspace is inside the frame
    # the standard 1 m arms keep their scale
    std = ArmEnv(arm_world("reach", "arm3"), render_mode="rgb_array", size=128)
    std.reset(seed=0)
    ys, xs = np.nonzero(np.all(std.render() == rim, axis=-1))
    assert xs.max() - xs.min() == pytest.approx(128 / 1.1, abs=3)


def test_arm_vector_env_keeps_gymnasium_contracts():
    """A seeded masked reset resets only the masked envs (it used to restart all); a NaN
    action is an error (it used to poison the episode); observations share no memory (the
    constant joint_desc and joint_mask rows were the engine's own buffers) and joint_mask has
    its space's dtype; final_info carries the success of the episodes that ended."""
    w = load_arm_world("ArmReach-N3")
    envs = ArmVectorEnv(w, 3, seed=0, numpy=True)
    obs, _ = envs.reset()
    for _ in range(5):
        obs, *_ = envs.step(np.zeros((3, 3), dtype=np.float32))
    mask = np.array([True, False, False])
    again, _ = envs.reset(seed=7, options={"reset_mask": mask})
    assert np.array_equal(again["ee"][1:], obs["ee"][1:])  # envs 1 and 2 keep going
    assert not np.array_equal(again["ee"][0], obs["ee"][0])
    # the reset env starts what env 0 of reset(seed=7) starts
    fresh = ArmVectorEnv(w, 3, numpy=True).reset(seed=7)[0]
    assert np.array_equal(again["ee"][0], fresh["ee"][0])
    with pytest.raises(EngineError, match="finite"):
        envs.step(np.array([[0, 0, 0], [np.nan, 0, 0], [0, 0, 0]], dtype=np.float32))
    o1, *_ = envs.step(np.zeros((3, 3), dtype=np.float32))
    o1["joint_desc"][:] = 99
    o1["joint_mask"][:] = 0
    o2, *_, info = envs.step(np.zeros((3, 3), dtype=np.float32))
    assert (o2["joint_desc"] != 99).any() and o2["joint_mask"].any()
    assert o2["joint_mask"].dtype == np.int8 == envs.single_observation_space["joint_mask"].dtype
    assert envs.observation_space.contains(o2)
    assert set(info["final_info"]) == {"success", "_success"}
