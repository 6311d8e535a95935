"""Gymnasium adapters: registration, check_env, the native vector env, seeding, rendering.

Parametrized over every catalogue world. The train banks are cut to a few levels here (the
adapters do not depend on the bank size) so that building an env stays fast.
"""

from __future__ import annotations

import math
import warnings

import gymnasium
import numpy as np
import pytest
import torch
import yaml
from gymnasium.utils.env_checker import check_env

import autoworld  # noqa: F401  (registers the envs)
from autoworld.envs.catalogue import list_worlds, load_world, world_path
from autoworld.envs.grid import levels
from autoworld.envs.grid.render import world_symbols
from autoworld.envs.grid.symbols import AGENT_SYMBOL_BY_DIR, Cell
from autoworld.errors import EngineError, SpecError
from autoworld.gym_env import GridEnv, GridVectorEnv, make_env, make_vector_env, to_numpy
from autoworld.registration import GENERIC_ID, env_id, register_envs

WORLDS = list_worlds()
TRAIN_LEVELS = 16
# observation sets whose image is exactly the world with the agent arrow (no filter)
PLAIN_FULL_VIEW = {"full_grid", "rgb", "text", "agent_features"}
STEPS = 80

# A tiny fully observed open room with cardinal moves: easy to walk to the goal on purpose.
TINY = {
    "name": "Tiny",
    "height": 6,
    "width": 6,
    "max_steps": 40,
    "layout": {"kind": "open_room"},
    "transition": [{"kind": "cardinal"}],
    "observation": [{"kind": "full_grid"}],
    "reward": [{"kind": "reach_goal", "reward": 1.0, "time_decay": 0.0}],
}


@pytest.fixture(autouse=True)
def small_train_banks(monkeypatch):
    monkeypatch.setitem(levels.DEFAULT_SIZES, "train", TRAIN_LEVELS)


@pytest.fixture
def tiny_path(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY), encoding="utf-8")
    return path


def _actions(seed: int, steps: int, num_envs: int | None = None) -> np.ndarray:
    shape = (steps,) if num_envs is None else (steps, num_envs)
    return np.random.default_rng(seed).integers(0, 7, size=shape)


def to_np(tree):
    """``to_numpy`` through lists and tuples too (rollout traces)."""
    if isinstance(tree, list | tuple):
        return [to_np(x) for x in tree]
    return to_numpy(tree)


def _vec(world: str, num_envs: int = 4, **kw) -> GridVectorEnv:
    return gymnasium.make_vec(env_id(world), num_envs=num_envs,
                              vectorization_mode="vector_entry_point", **kw)


# ======================================================================== registration
def test_every_catalogue_world_is_registered_once():
    for name in WORLDS:
        spec = gymnasium.spec(env_id(name))
        assert spec.kwargs == {"world": name}
        assert spec.vector_entry_point == "autoworld.gym_env:make_vector_env"
        data = yaml.safe_load(world_path(name).read_text())
        assert spec.max_episode_steps == data["max_steps"]
    assert GENERIC_ID in gymnasium.registry
    assert register_envs() == []  # idempotent


def test_import_autoworld_stays_light():
    import subprocess
    import sys

    code = ("import sys, autoworld, gymnasium; "
            "assert 'autoworld/DoorKey-8x8-v0' in gymnasium.registry; "
            "assert 'torch' not in sys.modules, 'import autoworld pulled in torch'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ======================================================================== single env
@pytest.mark.parametrize("world", WORLDS)
def test_check_env_passes(world):
    env = gymnasium.make(env_id(world))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(env.unwrapped, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("world", WORLDS)
def test_single_env_seeded_rollouts_repeat_and_keep_invariants(world):
    def rollout() -> list:
        env = make_env(world, render_mode="ansi")
        eng = env.engine
        full_view = {c.kind for c in env.world.observation} <= PLAIN_FULL_VIEW
        obs, info = env.reset(seed=7)
        trace = [obs]
        for a in _actions(1, STEPS):
            obs, reward, terminated, truncated, info = env.step(a)
            assert obs in env.observation_space
            assert isinstance(reward, float) and math.isfinite(reward)
            assert isinstance(terminated, bool) and isinstance(truncated, bool)
            assert not (terminated and truncated)
            row, col = divmod(int(eng.state.pos[0]), eng.W)
            assert row < env.world.height and col < env.world.width
            text = env.render()
            assert isinstance(text, str) and len(text.splitlines()) == env.world.height
            trace.append((obs, reward, terminated, truncated))
            if terminated or truncated:
                if full_view:  # the true final observation shows the terminal state
                    h, w = env.world.height, env.world.width
                    assert np.array_equal(obs["image"][:h, :w], world_symbols(eng, 0, env._ended))
                obs, _ = env.reset()
                trace.append(obs)
        return trace

    a, b = rollout(), rollout()
    assert gymnasium.utils.env_checker.data_equivalence(a, b, exact=True)


@pytest.mark.parametrize("world", WORLDS)
def test_render_modes(world):
    spec = load_world(world)
    env = gymnasium.make(env_id(world), render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (spec.height * 16, spec.width * 16, 3)
    env = gymnasium.make(env_id(world), render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    rows = text.splitlines()
    assert len(rows) == spec.height and all(len(r) == spec.width for r in rows)
    assert sum(text.count(ch) for ch in "^>v<") >= 1


def test_reset_level_option_and_seed_semantics():
    env = make_env("DoorKey-8x8")
    bank = env.engine.banks[0]
    for level in (0, 3, env.num_levels - 1):
        _, info = env.reset(seed=0, options={"level": level})
        assert info["level"] == level
        r, c = bank.agent_pos[level]
        assert int(env.engine.state.pos[0]) == r * env.engine.W + c
    with pytest.raises(EngineError):
        env.reset(options={"level": env.num_levels})
    with pytest.raises(EngineError):
        env.reset(options={"levle": 0})
    # reset(seed) restarts the level stream; reset() continues it
    levels = [env.reset(seed=5)[1]["level"]] + [env.reset()[1]["level"] for _ in range(5)]
    again = [env.reset(seed=5)[1]["level"]] + [env.reset()[1]["level"] for _ in range(5)]
    assert levels == again
    # a constructor seed makes the first unseeded reset reproducible
    first = [make_env("DoorKey-8x8", seed=3).reset()[0] for _ in range(2)]
    assert np.array_equal(first[0]["image"], first[1]["image"])


def test_max_episode_steps_override_truncates_and_keeps_levels():
    short = make_env("DoorKey-8x8", max_episode_steps=3)
    full = make_env("DoorKey-8x8")
    assert np.array_equal(short.reset(seed=0)[0]["image"], full.reset(seed=0)[0]["image"])
    outs = [short.step(6) for _ in range(3)]  # 6: done (a no-op) under turn_forward
    assert [o[3] for o in outs] == [False, False, True]


def test_world_v0_makes_any_spec_file(tiny_path):
    env = gymnasium.make(GENERIC_ID, spec=str(tiny_path))
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (6, 6)
    assert env.unwrapped.world.name == "Tiny"
    check_env(env.unwrapped, skip_render_check=False)
    envs = gymnasium.make_vec(GENERIC_ID, num_envs=3, vectorization_mode="vector_entry_point",
                              spec=str(tiny_path))
    obs, _ = envs.reset(seed=0)
    assert tuple(obs["image"].shape) == (3, 6, 6)


def test_missing_or_conflicting_world_arguments_raise_spec_errors(tiny_path):
    with pytest.raises(SpecError):
        make_env()
    with pytest.raises(SpecError):
        make_env("DoorKey-8x8", spec=tiny_path)
    with pytest.raises(SpecError):
        gymnasium.make(GENERIC_ID)
    with pytest.raises(SpecError):
        make_vector_env(2, world="DoorKey-8x8", worlds=["Empty-6x6"])
    with pytest.raises(EngineError):
        make_env("DoorKey-8x8", render_mode="human")


def _walk_to_goal(obs_image: np.ndarray) -> list[int]:
    """Cardinal actions from the agent to the goal in an open room (full view)."""
    agent = np.argwhere(np.isin(obs_image, [int(s) for s in AGENT_SYMBOL_BY_DIR]))[0]
    goal = np.argwhere(obs_image == Cell.GOAL)[0]
    dr, dc = goal - agent
    return [1 if dr > 0 else 3] * abs(int(dr)) + [0 if dc > 0 else 2] * abs(int(dc))


def test_final_obs_on_termination_is_the_terminal_observation(tiny_path):
    env = make_env(spec=tiny_path, render_mode="ansi")
    obs, _ = env.reset(seed=0, options={"level": 1})
    goal = tuple(np.argwhere(obs["image"] == Cell.GOAL)[0])
    path = _walk_to_goal(obs["image"])
    for a in path:
        obs, reward, terminated, truncated, _ = env.step(a)
    assert terminated and not truncated and reward == 1.0
    # the returned observation is the terminal one (agent on the goal), although the engine has
    # already reset itself to the next episode
    assert obs["image"][goal] in [int(s) for s in AGENT_SYMBOL_BY_DIR]
    assert (obs["image"] != Cell.GOAL).all()
    assert int(env.engine.state.t[0]) == 0
    assert env.render().splitlines()[goal[0]][goal[1]] in "^>v<"

    # the vector env reports the same final observation and the episode's statistics
    envs = make_vector_env(1, spec=tiny_path, seed=0)
    vobs, _ = envs.reset(seed=0, options={"level": 1})
    for i, a in enumerate(path):
        vobs, r, term, trunc, info = envs.step(torch.tensor([a]))
        done = i == len(path) - 1
        assert bool(info["_final_obs"][0]) is done and bool(info["_episode"][0]) is done
    assert np.array_equal(info["final_obs"]["image"][0].numpy(), obs["image"])
    assert not torch.equal(info["final_obs"]["image"][0], vobs["image"][0])
    assert float(info["episode"]["r"][0]) == 1.0 and int(info["episode"]["l"][0]) == len(path)


# ======================================================================== vector env
@pytest.mark.parametrize("world", WORLDS)
def test_make_vec_tensors_numpy_determinism_and_invariants(world):
    B = 4
    envs = _vec(world, B, seed=0)
    assert isinstance(envs, GridVectorEnv)
    assert envs.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP
    assert envs.action_space.shape == (B,)
    acts = _actions(2, STEPS, B)

    def rollout(env) -> list:
        obs, _ = env.reset(seed=11)
        trace = [obs]
        eng = env.engine
        for a in acts:
            obs, reward, term, trunc, info = env.step(a)
            trace.append((obs, reward, term, trunc))
            if env.numpy:
                continue
            for key, space in env.observation_space.items():
                assert obs[key].shape == space.shape and obs[key].device == env.device
                assert str(obs[key].dtype).removeprefix("torch.") == str(space.dtype)
                assert info["final_obs"][key].shape == space.shape
            assert reward.shape == (B,) and reward.dtype == torch.float32
            assert term.dtype == torch.bool and trunc.dtype == torch.bool
            assert torch.isfinite(reward).all() and not (term & trunc).any()
            assert torch.equal(info["_final_obs"], term | trunc)
            rows, cols = eng.state.pos // eng.W, eng.state.pos % eng.W
            assert ((rows < eng.height) & (cols < eng.width)).all()
        return trace

    a = rollout(envs)
    b = rollout(_vec(world, B, seed=0))
    eq = gymnasium.utils.env_checker.data_equivalence
    assert eq(to_np(a), to_np(b), exact=True)

    nenvs = _vec(world, B, numpy=True)
    c = rollout(nenvs)
    assert eq(to_np(a), to_np(c), exact=True)  # numpy mode returns the same data as numpy arrays
    obs, reward, term, trunc, info = nenvs.step(acts[0])
    assert obs in nenvs.observation_space
    assert isinstance(reward, np.ndarray) and isinstance(term, np.ndarray)
    assert isinstance(info["episode"]["r"], np.ndarray)
    assert all(isinstance(v, np.ndarray) for v in info["final_obs"].values())


def test_vector_episode_statistics_match_a_manual_count():
    envs = make_vector_env(6, world="Empty-6x6", seed=0)
    envs.reset(seed=0)
    ret, length, ended = torch.zeros(6), torch.zeros(6, dtype=torch.long), 0
    for a in _actions(4, 150, 6):
        _, r, term, trunc, info = envs.step(a)
        ret, length = ret + r, length + 1
        done = term | trunc
        assert torch.equal(info["_episode"], done)
        assert torch.allclose(info["episode"]["r"], torch.where(done, ret, 0.0))
        assert torch.equal(info["episode"]["l"], torch.where(done, length, 0))
        ret, length = torch.where(done, 0.0, ret), torch.where(done, 0, length)
        ended += int(done.sum())
    assert ended > 0


def test_vector_reset_mask_levels_and_seed():
    envs = make_vector_env(4, world="DoorKey-8x8", seed=0)
    obs, info = envs.reset(seed=1, options={"level": [0, 1, 2, 3]})
    assert info["level"].tolist() == [0, 1, 2, 3]
    envs.step(torch.full((4,), 2))
    t_before = envs.engine.state.t.clone()
    mask = torch.tensor([True, False, True, False])
    _, info = envs.reset(options={"reset_mask": mask, "level": 5})
    assert envs.engine.state.t.tolist() == torch.where(mask, 0, t_before).tolist()
    assert info["level"][0] == 5 and info["level"][1] == 1
    with pytest.raises(EngineError):
        envs.reset(seed=[1, 2, 3, 4])
    with pytest.raises(EngineError):
        envs.reset(options={"reset_mask": [1, 0, 1, 0]})
    # a level past a world's bank is an error, as in the single env (it used to wrap around)
    mixed = make_vector_env(2, worlds=["DoorKey-8x8", "Empty-6x6"], split="test", seed=0)
    mixed.reset(seed=0, options={"level": [9, 9]})
    with pytest.raises(EngineError, match="env 1 asks for level 10, its world's bank holds "
                                          "levels 0..9"):
        mixed.reset(options={"level": [0, 10]})


def test_heterogeneous_batch_and_vector_render():
    envs = make_vector_env(4, worlds=["DoorKey-8x8", "Empty-6x6"], seed=0,
                           render_mode="ansi")
    obs, _ = envs.reset()
    for key, space in envs.observation_space.items():
        assert tuple(obs[key].shape) == space.shape
    frames = envs.render()
    assert [len(f.splitlines()) for f in frames] == [8, 6, 8, 6]
    for a in _actions(5, 30, 4):
        obs, *_ = envs.step(a)
    assert obs["image"].shape[0] == 4
    rgb = make_vector_env(2, world="Empty-6x6", render_mode="rgb_array").render()
    assert len(rgb) == 2 and rgb[0].shape == (96, 96, 3) and rgb[0].dtype == np.uint8


def test_make_vec_sync_mode_uses_the_single_env():
    envs = gymnasium.make_vec(env_id("Empty-6x6"), num_envs=2, vectorization_mode="sync")
    obs, _ = envs.reset(seed=0)
    assert obs["image"].shape == (2, 6, 6) and isinstance(envs.envs[0].unwrapped, GridEnv)
    envs.step(np.array([0, 1]))
    envs.close()


def test_a_masked_reset_leaves_the_other_envs_episodes_untouched():
    # a stochastic world: an unmasked env's next steps depend on its random key and counter,
    # which a reset of other envs (even with a seed) must not touch
    a = make_vector_env(4, world="SlipperyDeceptive-7x7", seed=0)
    b = make_vector_env(4, world="SlipperyDeceptive-7x7", seed=0)
    a.reset(seed=1)
    b.reset(seed=1)
    act = torch.tensor([0, 1, 2, 3])
    for _ in range(3):
        a.step(act)
        b.step(act)
    a.reset(seed=9, options={"reset_mask": torch.tensor([True, False, False, False])})
    for _ in range(10):
        oa, ra, *_ = a.step(act)
        ob, rb, *_ = b.step(act)
        assert torch.equal(oa["image"][1:], ob["image"][1:]) and torch.equal(ra[1:], rb[1:])


def test_actions_are_checked_in_the_single_and_the_vector_env():
    """Bad actions are errors that name the fix. The vector env used to pass -1 to the engine
    (a diagonal move with direction -1 that corrupted the state), accept floats by truncating
    them and accept one action for several envs; the single env took int(2.9) == 2 and "3"."""
    env = make_env("DoorKey-8x8")
    env.reset(seed=0)
    for bad in (2.9, np.float32(6.99), "3", 7, -1):
        with pytest.raises(EngineError, match="action must"):
            env.step(bad)
    for good in (2, np.int32(2), np.int64(2), torch.tensor(2), np.array(2)):
        env.step(good)
    envs = make_vector_env(2, "DoorKey-8x8", seed=0)
    envs.reset()
    for bad, match in (([-1, 0], "env 0 got -1"), ([0, 7], "env 1 got 7"),
                       ([2.9, 1.5], "integers"), (torch.tensor([1.0, 2.0]), "integers"),
                       ([0], r"shape \(2,\)"), ([[0], [1]], r"shape \(2,\)"), (3, r"shape")):
        with pytest.raises(EngineError, match=match):
            envs.step(bad)
    for good in ([0, 1], np.array([2, 3], dtype=np.int32), torch.tensor([4, 5])):
        envs.step(good)


def test_numpy_integer_seeds_are_taken():
    envs = make_vector_env(2, "Empty-6x6", numpy=True)
    a = envs.reset(seed=np.int64(3))[0]
    b = envs.reset(seed=3)[0]
    assert all(np.array_equal(a[k], b[k]) for k in a)
