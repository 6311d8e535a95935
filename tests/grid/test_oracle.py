"""The exact oracle: optimal returns known by hand, plan replay, the upper bound, random returns
and normalized scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autoworld.envs.catalogue import load_world
from autoworld.envs.grid.components.registry import REGISTRY
from autoworld.envs.grid.engine import GridEngine
from autoworld.envs.grid.level import Level, LevelBank
from autoworld.envs.grid.levels import generate_level
from autoworld.envs.grid.oracle import (
    normalized_scores,
    random_return,
    random_returns,
    solve,
    solve_many,
)
from tests.conftest import make_spec

CORRIDOR = ["#######", "#######", "#....G#", "#######", "#######"]  # goal 4 steps east of (2, 1)
KEY_DOOR = ["#####", "#k..#", "##D##", "#..G#", "#####"]
COINS = ["#######", "#######", "#$...$#", "#######", "#######"]


def replay(spec, level: Level, plan: list[int]) -> float:
    """Return of executing ``plan`` from the level's start in a fresh engine (first episode)."""
    eng = GridEngine(spec, num_envs=1, banks=[LevelBank.from_levels([level])], final_obs=False)
    eng.reset()
    total = 0.0
    for a in plan:
        _, r, term, trunc, _ = eng.step(torch.tensor([a]))
        total += float(r[0])
        if bool(term[0] | trunc[0]):
            break
    return total


def test_corridor_under_cardinal_moves():
    spec = make_spec(width=7, max_steps=20, reward=[{"kind": "reach_goal", "time_decay": 0.9}])
    level = Level.from_ascii(CORRIDOR, (2, 1), 0)
    res = solve(spec, level)
    assert res.exact and not res.stochastic
    assert res.optimal_return == pytest.approx(1 - 0.9 * 4 / 20, abs=1e-6)
    assert res.plan == [0, 0, 0, 0]
    # 4 floor cells x 4 facings, less facing west next to the goal (pressing west moves away)
    assert res.num_states == 15
    assert replay(spec, level, res.plan) == pytest.approx(res.optimal_return, abs=1e-6)


def test_truncation_when_the_goal_is_beyond_the_horizon():
    spec = make_spec(width=7, max_steps=3, reward=[{"kind": "reach_goal", "time_decay": 0.9}])
    res = solve(spec, Level.from_ascii(CORRIDOR, (2, 1), 0))
    assert res.exact and res.optimal_return == 0.0 and not res.positive_reachable


def test_turn_forward_counts_turns():
    spec = make_spec(width=7, max_steps=20, transition=[{"kind": "turn_forward"}],
                     reward=[{"kind": "reach_goal", "time_decay": 0.9}])
    level = Level.from_ascii(CORRIDOR, (2, 1), 2)  # facing west: two turns, then four steps
    res = solve(spec, level)
    assert res.optimal_return == pytest.approx(1 - 0.9 * 6 / 20, abs=1e-6)
    assert len(res.plan) == 6
    assert replay(spec, level, res.plan) == pytest.approx(res.optimal_return, abs=1e-6)


def test_key_and_door():
    spec = make_spec(transition=[{"kind": "turn_forward"}, {"kind": "keys_doors"}],
                     reward=[{"kind": "reach_goal", "time_decay": 0.9}])
    level = Level.from_ascii(KEY_DOOR, (1, 2), 2)  # key in front
    res = solve(spec, level)
    # pick up, turn south, unlock, forward x2, turn east, forward = 7 steps
    assert res.optimal_return == pytest.approx(1 - 0.9 * 7 / 50, abs=1e-6)
    assert replay(spec, level, res.plan) == pytest.approx(res.optimal_return, abs=1e-6)


def test_coins_with_step_penalty():
    spec = make_spec(width=7, max_steps=30, reward=[
        {"kind": "collect_items", "reward": 1.0, "terminate_when_all": True},
        {"kind": "step_penalty", "cost": 0.01},
    ])
    level = Level.from_ascii(COINS, (2, 3), 0)
    res = solve(spec, level)
    assert res.optimal_return == pytest.approx(2.0 - 0.01 * 6, abs=1e-6)  # west 2, east 4
    assert replay(spec, level, res.plan) == pytest.approx(res.optimal_return, abs=1e-6)


def test_slippery_world_is_solved_in_expectation():
    if "slippery" not in REGISTRY:
        pytest.skip("the 'slippery' component is not registered")
    p, T, decay = 0.5, 4, 0.9
    spec = make_spec(max_steps=T, transition=[{"kind": "cardinal"},
                                              {"kind": "slippery", "prob": p}],
                     reward=[{"kind": "reach_goal", "time_decay": decay}])
    rows = ["#####", "#####", "#.G##", "#####", "#####"]  # every other action is a no-op
    res = solve(spec, Level.from_ascii(rows, (2, 1), 0))
    q = (1 - p) + p / 7  # east is kept or re-drawn as east
    expected = sum((1 - q) ** (t - 1) * q * (1 - decay * t / T) for t in range(1, T + 1))
    assert res.exact and res.stochastic and res.plan is None
    assert res.optimal_return == pytest.approx(expected, abs=1e-6)


def test_upper_bound_is_flagged_above_the_cap():
    spec = make_spec(width=7, max_steps=30, reward=[
        {"kind": "collect_items", "reward": 1.0, "terminate_when_all": True},
        {"kind": "step_penalty", "cost": 0.01},
    ])
    level = Level.from_ascii(COINS, (2, 3), 0)
    exact = solve(spec, level)
    bound = solve(spec, level, state_cap=2)
    assert not bound.exact and bound.plan is None and bound.num_states == 2
    assert bound.optimal_return == pytest.approx(2.0)  # two coins, the penalty counts 0
    assert bound.optimal_return >= exact.optimal_return


@pytest.fixture(scope="module")
def doorkey_level0():
    spec = load_world("DoorKey-8x8")
    return spec, generate_level(spec, "test", 0, exact=False)


def test_doorkey_plan_replays_and_beats_random(doorkey_level0):
    spec, level = doorkey_level0
    res = solve(spec, level)
    assert res.exact and 0.9 < res.optimal_return < 1.0
    assert replay(spec, level, res.plan) == pytest.approx(res.optimal_return, abs=1e-6)
    rnd = random_return(spec, level, episodes=32, seed=0)
    assert rnd == random_return(spec, level, episodes=32, seed=0)  # deterministic
    assert 0.0 <= rnd < res.optimal_return
    capped = solve(spec, level, state_cap=100)
    assert not capped.exact and res.optimal_return <= capped.optimal_return < 1.0


def test_normalized_scores_edge_cases():
    assert normalized_scores(0.5, 1.0, 0.0) == pytest.approx((0.5, 0.5))
    assert normalized_scores(0.6, 0.8, 0.4) == pytest.approx((0.75, 0.5))
    assert normalized_scores(-1.0, 1.0, -0.5) == pytest.approx((-1.0, -1 / 3))
    # nothing positive attainable: matching the optimum is full score
    assert normalized_scores(0.0, 0.0, -0.5) == pytest.approx((1.0, 1.0))
    assert normalized_scores(-0.3, 0.0, -0.5) == pytest.approx((0.0, 0.4))
    # the random policy is already optimal
    assert normalized_scores(0.7, 0.7, 0.7) == (1.0, 1.0)
    assert normalized_scores(0.5, 0.7, 0.7) == (pytest.approx(0.5 / 0.7), 0.0)
    ratio, gain = normalized_scores(np.array([0.0, 1.0]), np.array([1.0, 0.0]),
                                    np.array([0.0, 0.0]))
    assert ratio.tolist() == [0.0, 1.0] and gain.tolist() == [0.0, 1.0]


def _same(a, b) -> bool:
    """Two oracle results agree exactly (wall time aside)."""
    da, db = a.model_dump(), b.model_dump()
    da.pop("seconds"), db.pop("seconds")
    return da == db


@pytest.mark.parametrize("world", ["Checkpoints-9x9", "SlipperyDeceptive-7x7", "Sokoban-7x7",
                                   "TeleportMaze-9x9"])
def test_batched_solve_and_random_returns_equal_one_level_at_a_time(world):
    """Levels as the batch dimension: the same figures, bit for bit, as one solve per level
    (deterministic and stochastic worlds, plans included)."""
    from autoworld.envs.grid.levels import bank

    spec = load_world(world)
    b = bank(spec, "validation")
    levels = [b.level(i) for i in range(3)]
    batched = solve_many(spec, levels, plan=True)
    assert all(_same(x, solve(spec, lv, plan=True)) for x, lv in zip(batched, levels,
                                                                      strict=True))
    assert [r.optimal_return for r in batched] == pytest.approx(b.info["optimal_return"][:3],
                                                                abs=1e-6)
    rnd = random_returns(spec, levels, episodes=16, seed=3)
    assert rnd == [random_return(spec, lv, episodes=16, seed=3) for lv in levels]


def test_batched_solve_applies_the_cap_per_level():
    spec = make_spec(width=7, max_steps=30, reward=[
        {"kind": "collect_items", "reward": 1.0, "terminate_when_all": True},
        {"kind": "step_penalty", "cost": 0.01},
    ])
    big = Level.from_ascii(COINS, (2, 3), 0)
    small = Level.from_ascii(CORRIDOR, (2, 1), 0)  # no coins: a handful of states
    alone = [solve(spec, lv, state_cap=20, plan=False) for lv in (big, small, big)]
    together = solve_many(spec, [big, small, big], state_cap=20)
    assert [r.exact for r in together] == [False, True, False]
    assert all(_same(x, y) for x, y in zip(together, alone, strict=True))
    assert solve_many(spec, []) == []


def test_hash_collisions_fall_back_to_exact_keys(monkeypatch):
    """With every state hash forced equal, the enumeration falls back to byte keys and still
    gives the same results."""
    from autoworld.envs.grid import oracle_states

    spec = load_world("SlipperyDeceptive-7x7")
    from autoworld.envs.grid.levels import bank

    levels = [bank(spec, "validation").level(i) for i in range(2)]
    expected = solve_many(spec, levels)
    monkeypatch.setattr(oracle_states, "_row_hash", lambda mat: np.zeros(len(mat), dtype=np.uint64))
    again = solve_many(spec, levels)
    assert all(_same(a, b) for a, b in zip(again, expected, strict=True))


def test_state_index_runs_give_the_ids_of_a_dict():
    """The hashed index (sorted runs, merged as they grow) hands out the same ids as a dict of
    the keys, block after block, for new and already-seen keys."""
    from autoworld.envs.grid.oracle_states import _group_rows, _StateIndex

    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, size=(3000, 11), dtype=np.uint8)
    hashed, plain = _StateIndex(hashed=True), _StateIndex(hashed=False)
    for _ in range(60):
        block = pool[rng.integers(0, len(pool), size=int(rng.integers(1, 400)))]
        first, group, h = _group_rows(block)
        assert h is not None
        got = hashed.ids(block[first], h)[group]
        assert np.array_equal(got, plain.ids(block, None))
    assert len(hashed) == len(plain) > 2000
    assert len(hashed._runs) <= int(np.log2(len(hashed))) + 2  # merged, not one run per block


@pytest.mark.parametrize("world", ["DoorKey-8x8", "SlipperyDeceptive-7x7"])
def test_value_iteration_over_depth_prefixes_equals_the_full_sweep(world, monkeypatch):
    """Updating only the states reachable by time t gives the same values, bit for bit, and the
    same plans as updating every state at every step."""
    from autoworld.envs.grid import oracle
    from autoworld.envs.grid.levels import bank

    spec = load_world(world)
    levels = [bank(spec, "validation").level(i) for i in range(2)]
    calls = []
    real = oracle._value_iteration
    monkeypatch.setattr(oracle, "_value_iteration",
                        lambda *a: calls.append(a) or real(*a))
    solve_many(spec, levels)
    nxt, fixed, timed, columns, probs, decay, T, _, starts, depth = calls[0]
    args = (nxt, fixed, timed, columns, probs, decay, T, columns.shape[1] == 1, starts)
    v_full, p_full = real(*args)
    v_pre, p_pre = real(*args, depth)
    assert np.array_equal(v_full, v_pre)
    assert depth[0] == 0 and np.all(np.diff(depth) >= 0)
    if p_full is not None:
        for s in starts:
            assert oracle._read_plan(p_full, nxt, int(s), columns) == \
                oracle._read_plan(p_pre, nxt, int(s), columns)


def test_a_state_budget_stops_the_pass_with_a_clear_error():
    from autoworld.envs.grid.levels import bank
    from autoworld.envs.grid.oracle import StateBudgetExceeded

    spec = load_world("DoorKey-8x8")
    levels = [bank(spec, "validation").level(i) for i in range(3)]
    with pytest.raises(StateBudgetExceeded, match="more than 500 reachable states"):
        solve_many(spec, levels, state_budget=500)
    within = solve_many(spec, levels, state_budget=10**7)
    assert all(_same(a, b) for a, b in zip(within, solve_many(spec, levels), strict=True))


def _every_row(spec, bank, device, digits, K):
    """``_distinct_columns`` without merging: every (action, outcome) row stepped by itself."""
    from autoworld.envs.grid.engine import NUM_ACTIONS

    rows = np.arange(NUM_ACTIONS * K)
    return (rows // K, {n: d[rows % K] for n, d in digits.items()},
            rows.reshape(NUM_ACTIONS, K))


@pytest.mark.parametrize("transition", [
    [{"kind": "cardinal"}, {"kind": "slippery", "prob": 0.2}],
    [{"kind": "turn_forward"}, {"kind": "slippery", "prob": 0.3}, {"kind": "wind", "prob": 0.2},
     {"kind": "keys_doors"}],
    [{"kind": "cardinal"}, {"kind": "permuted_controls", "permutation": [1, 2, 0, 3, 5, 4, 6]},
     {"kind": "slippery", "prob": 0.1}, {"kind": "wind", "direction": 2, "prob": 0.3}],
])
def test_distinct_transitions_give_the_figures_of_every_row(transition, monkeypatch):
    """Stepping each state's distinct transitions once (a slip replaces every action by the
    same one) gives the same values, state counts and reachability, bit for bit, as stepping
    all NUM_ACTIONS x outcomes rows."""
    from autoworld.envs.grid import oracle

    spec = make_spec(height=6, width=6, max_steps=14, objects={"coins": 2, "goal": True},
                     transition=transition,
                     reward=[{"kind": "reach_goal", "time_decay": 0.5},
                             {"kind": "collect_items", "reward": 0.3},
                             {"kind": "step_penalty", "cost": 0.01}],
                     layout={"kind": "rooms", "rooms_x": 2, "rooms_y": 1,
                             "locked_doors": int(any(c["kind"] == "keys_doors"
                                                     for c in transition))})
    levels = [generate_level(spec, "test", i, exact=False) for i in range(3)]
    seen = []
    real = oracle._distinct_columns
    monkeypatch.setattr(oracle, "_distinct_columns",
                        lambda *a: seen.append(real(*a)) or seen[-1])
    merged = solve_many(spec, levels)
    rows_per_state = len(seen[0][0])
    assert rows_per_state < seen[0][2].size  # fewer rows stepped than (action, outcome) pairs
    monkeypatch.setattr(oracle, "_distinct_columns", _every_row)
    assert all(_same(a, b) for a, b in zip(merged, solve_many(spec, levels), strict=True))


@pytest.mark.parametrize("world", ["SlipperyDeceptive-7x7", "DoorKey-8x8", "CrumblingBridge-9x9"])
def test_random_returns_equal_stepping_the_engine(world):
    """The transition-only rollouts of ``random_returns`` give the returns of stepping the
    engine (observations, autoreset and all) with the same actions, bit for bit."""
    from autoworld.envs.grid.engine import NUM_ACTIONS
    from autoworld.envs.grid.levels import bank

    spec = load_world(world)
    levels = [bank(spec, "validation").level(i) for i in range(2)]
    episodes, L = 16, 2
    eng = GridEngine(spec, num_envs=L * episodes, seed=5,
                     banks=[LevelBank.from_levels(levels)], final_obs=False,
                     env_index=list(range(episodes)) * L)
    eng.reset(level_ids=torch.arange(L).repeat_interleave(episodes))
    gen = torch.Generator().manual_seed(5)
    total = torch.zeros(L * episodes, dtype=torch.float64)
    alive = torch.ones(L * episodes, dtype=torch.bool)
    for _ in range(spec.max_steps):
        a = torch.randint(0, NUM_ACTIONS, (episodes,), generator=gen).repeat(L)
        _, reward, terminated, truncated, _ = eng.step(a)
        total += torch.where(alive, reward.double(), 0.0)
        alive &= ~(terminated | truncated)
    expected = [math.fsum(row) / episodes for row in total.view(L, episodes).tolist()]
    assert random_returns(spec, levels, episodes=episodes, seed=5) == expected


def test_state_count_bound_holds_on_every_catalogue_level():
    """The stored exact state count of every catalogue level is within state_count_bound."""
    import json

    from autoworld.envs.catalogue import levels_path, list_worlds
    from autoworld.envs.grid.oracle import state_count_bound

    checked = 0
    for name in list_worlds(generated=True):
        spec = load_world(name)
        if getattr(spec, "family", "grid") != "grid" or not levels_path(name).is_file():
            continue
        bound = state_count_bound(spec)
        data = json.loads(levels_path(name).read_text(encoding="utf-8"))
        for entries in data["splits"].values():
            for e in entries:
                if e["optimal_exact"]:
                    assert e["num_states"] <= bound, (name, e["num_states"], bound)
                    checked += 1
    assert checked > 300
