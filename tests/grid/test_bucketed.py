"""Bucketed mixed batches: one program per component set, identical to one program for all."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch

from autoworld.envs.catalogue import load_world
from autoworld.envs.grid.bucketed import (
    STREAMS_ENV_VAR,
    BucketedGridEngine,
    component_signature,
    default_concurrent,
    make_engine,
    plan_buckets,
)
from autoworld.envs.grid.engine import NUM_ACTIONS, GridEngine
from autoworld.errors import EngineError

# different component sets: stochastic moves, masks and noise, text output, key/door, sizes
MIX = ["DoorKey-8x8", "SlipperyLava-9x9", "Checkpoints-9x9", "NoisyMaze-9x9", "CoinMaze-11x11",
       "DoorKey-8x8"]


@pytest.fixture(scope="module")
def worlds():
    return [load_world(n) for n in MIX[:-1]]


def _rollout(eng, steps: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    out = [eng.reset()]
    for _ in range(steps):
        actions = torch.randint(0, NUM_ACTIONS, (eng.num_envs,), generator=gen)
        out.append(eng.step(actions))
    return out


def _assert_same(a, b) -> None:
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert torch.equal(a, b)


def test_bucketing_changes_no_trajectory(worlds):
    # interleaved world ids (not contiguous per bucket), and a world twice in the batch
    ids = [0, 3, 1, 4, 2, 2, 1, 0, 4, 3, 1, 0, 2, 3, 4, 0, 1, 1, 3]
    kw = dict(num_envs=len(ids), seed=7, world_ids=ids)
    single = make_engine(worlds, bucketing="none", **kw)
    bucketed = make_engine(worlds, bucketing="components", **kw)
    assert isinstance(single, GridEngine)
    assert isinstance(bucketed, BucketedGridEngine)
    assert bucketed.num_buckets == len({component_signature(w) for w in worlds})
    assert bucketed.observation_spec() == single.observation_spec()
    a, b = _rollout(single, 80), _rollout(bucketed, 80)
    _assert_same(a, b)
    assert torch.equal(single.level_index(), bucketed.level_index())
    ended = sum(int((o[2] | o[3]).sum()) for o in a[1:])
    assert ended > 0  # autoreset was exercised


def test_contiguous_buckets_and_reset_options(worlds):
    ids = [0] * 4 + [1] * 3 + [2] * 5
    kw = dict(num_envs=len(ids), seed=3, world_ids=ids)
    single = GridEngine(worlds[:3], **kw)
    bucketed = BucketedGridEngine(worlds[:3], **kw)
    _assert_same(single.reset(), bucketed.reset())
    levels = torch.arange(len(ids))
    mask = torch.tensor([i % 2 == 0 for i in range(len(ids))])
    _assert_same(single.reset(seed=11, level_ids=levels, mask=mask),
                 bucketed.reset(seed=11, level_ids=levels, mask=mask))
    assert torch.equal(single.level_index(), bucketed.level_index())
    assert torch.equal(single.bank_count, bucketed.bank_count)
    _assert_same(_rollout(single, 30, seed=5)[1:], _rollout(bucketed, 30, seed=5)[1:])


def test_plan_merges_buckets_when_one_program_is_cheaper(worlds):
    ids = [i % len(worlds) for i in range(60)]
    sigs = {component_signature(w) for w in worlds}
    apart = plan_buckets(worlds, ids, overhead_envs=0)  # no fixed cost: never merge
    assert len(apart) == len(sigs)
    assert [sorted(b) for b in plan_buckets(worlds, ids, overhead_envs=1e9)] == [
        list(range(len(worlds)))]
    for k in (0, 30, 300, 3000):
        plan = plan_buckets(worlds, ids, overhead_envs=k)
        assert sorted(w for ws in plan for w in ws) == list(range(len(worlds)))
    # larger batches keep more programs apart (the fixed cost is amortized)
    sizes = [len(plan_buckets(worlds, [i % 5 for i in range(n)], device="cpu"))
             for n in (50, 5_000, 500_000)]
    assert sizes == sorted(sizes) and sizes[0] == 1 and sizes[-1] == len(sigs)
    # make_engine follows the plan: one program for a small batch
    assert isinstance(make_engine(worlds, num_envs=10), GridEngine)
    eng = make_engine(worlds, num_envs=10, overhead_envs=0)
    assert isinstance(eng, BucketedGridEngine) and eng.num_buckets == len(sigs)


def test_streams_default_for_graphed_cuda_engines(monkeypatch):
    """Buckets go on CUDA streams by default where they were measured faster: CUDA engines that
    replay graphs (asked for, or by AUTOWORLD_CUDA_GRAPH=1); AUTOWORLD_CUDA_STREAMS=0/1 decides
    over that; never on CPU."""
    monkeypatch.delenv(STREAMS_ENV_VAR, raising=False)
    monkeypatch.delenv("AUTOWORLD_CUDA_GRAPH", raising=False)
    assert not default_concurrent("cpu", True)
    assert default_concurrent("cuda", True)
    assert not default_concurrent("cuda", False)
    assert not default_concurrent("cuda", None)
    monkeypatch.setenv("AUTOWORLD_CUDA_GRAPH", "1")
    assert default_concurrent("cuda", None) and not default_concurrent("cuda", False)
    monkeypatch.setenv(STREAMS_ENV_VAR, "0")
    assert not default_concurrent("cuda", True)
    monkeypatch.setenv(STREAMS_ENV_VAR, "1")
    assert default_concurrent("cuda", False) and not default_concurrent("cpu", False)


def test_programs_on_streams_are_charged_less(worlds):
    """With streams a program's fixed cost overlaps the others', so the plan keeps more programs
    apart at the same batch (and still one program for a small batch)."""
    sigs = {component_signature(w) for w in worlds}
    for n, small in ((5_000, True), (200_000, False)):
        ids = [i % len(worlds) for i in range(n)]
        alone = plan_buckets(worlds, ids, device="cuda")
        side = plan_buckets(worlds, ids, device="cuda", concurrent=True)
        assert len(alone) <= len(side) <= len(sigs)
        if small:
            assert len(side) == 1
        else:
            assert len(alone) < len(side) == len(sigs)


def test_make_engine_picks_one_program_for_one_component_set(worlds):
    eng = make_engine([worlds[0], worlds[0]], num_envs=4)
    assert isinstance(eng, GridEngine)
    # only worlds in use count: world 1 has no env here
    eng = make_engine(worlds[:2], num_envs=3, world_ids=[0, 0, 0])
    assert isinstance(eng, GridEngine)
    forced = make_engine(worlds[0], num_envs=4, bucketing="components")
    assert isinstance(forced, BucketedGridEngine) and forced.num_buckets == 1
    with pytest.raises(EngineError, match="bucketing"):
        make_engine(worlds, num_envs=4, bucketing="sometimes")  # type: ignore[arg-type]


def test_locate_and_render(worlds):
    from autoworld.envs.grid.render import render_ascii

    ids = [1, 0, 1, 0]
    bucketed = BucketedGridEngine(worlds[:2], num_envs=4, world_ids=ids, seed=0)
    single = GridEngine(worlds[:2], num_envs=4, world_ids=ids, seed=0)
    bucketed.reset()
    single.reset()
    for i in range(4):
        eng, j = bucketed.locate(i)
        assert eng.worlds[int(eng.world_ids[j])].name == worlds[ids[i]].name
        assert render_ascii(bucketed, i) == render_ascii(single, i)
    with pytest.raises(EngineError, match="outside the batch"):
        bucketed.locate(4)


def test_vector_env_over_a_mix_is_bucketed():
    envs = gymnasium.make_vec("autoworld/World-v0", num_envs=6,
                              vectorization_mode="vector_entry_point",
                              worlds=MIX, numpy=True, seed=0, render_mode="ansi",
                              bucketing="components")
    assert isinstance(envs.unwrapped.engine, BucketedGridEngine)
    obs, info = envs.reset(options={"level": 2})
    assert np.array_equal(info["level"], np.full(6, 2))
    assert envs.observation_space.contains(obs)
    for _ in range(5):
        obs, reward, term, trunc, info = envs.step(envs.action_space.sample())
        assert envs.observation_space.contains(obs)
    frames = envs.render()
    assert len(frames) == 6 and all(isinstance(f, str) and f for f in frames)
    envs.close()


@pytest.mark.parametrize("name", ["Checkpoints-9x9", "NoisyMaze-9x9"])
def test_a_small_view_draws_its_filters_noise_as_it_does_alone(name):
    # a 5x5 egocentric view with random_mask / symbol_noise inside a 7x7 batch window: its
    # noise is keyed by its own cells, not by where the window puts them
    small, big = load_world(name), load_world("DoorKey-8x8")
    alone = GridEngine(small, num_envs=2, seed=4)
    mixed = GridEngine([small, big], num_envs=4, seed=4, world_ids=[0, 0, 1, 1],
                       env_index=[0, 1, 2, 3])
    a = alone.reset(seed=4, level_ids=torch.tensor([0, 1]))["image"]
    m = mixed.reset(seed=4, level_ids=torch.tensor([0, 1, 0, 1]))["image"]
    for _ in range(5):
        assert torch.equal(m[:2, 2:7, 1:6], a)  # the 5x5 view sits at the window's bottom
        act = torch.tensor([2, 0])
        a = alone.step(act)[0]["image"]
        m = mixed.step(torch.cat([act, act]))[0]["image"]
