"""Reward components on tiny hand-made levels: semantics, resets, shaping, batch neutrality."""

from __future__ import annotations

import annotated_types
import pytest
import torch

from autoworld.envs.grid.components.registry import REGISTRY, components_of
from autoworld.envs.grid.engine import GridEngine, StepContext
from autoworld.envs.grid.level import Level, LevelBank
from autoworld.envs.grid.symbols import Cell
from tests.conftest import act, make_engine, make_spec

E, S, W, N, STAY = 0, 1, 2, 3, 4  # cardinal actions (4 = pick up, a no-op on empty floor)
ROOM = ["#####", "#...#", "#...#", "#..G#", "#####"]
TESTED = {
    "reach_goal", "collect_items", "hazard", "step_penalty", "ordered_subgoals", "coverage",
    "box_on_target", "inverted_goal", "distance_shaping",
}


def rewards(eng: GridEngine, *actions: int) -> list[tuple[float, bool]]:
    """(reward, terminated) of env 0 after each action."""
    out = []
    for a in actions:
        _, r, term, _, _ = act(eng, a)
        out.append((round(float(r[0]), 6), bool(term[0])))
    return out


def cell(eng: GridEngine, r: int, c: int, env: int = 0) -> int:
    return int(eng.state.grid[env, r * eng.W + c])


# ---------------------------------------------------------------------- registry-wide checks
def test_every_reward_component_is_tested_documented_and_bounded():
    names = {c.name for c in components_of("reward")}
    assert names >= TESTED
    assert not names - TESTED, f"add a semantics test for {sorted(names - TESTED)}"
    for name in names:
        comp = REGISTRY[name]
        assert len(comp.doc()) > 40, name
        for field, info in comp.Params.model_fields.items():
            if field == "kind":
                continue
            assert info.description, f"{name}.{field} needs a description"
            if info.annotation in (int, float):
                kinds = {type(m) for m in info.metadata}
                assert kinds & {annotated_types.Ge, annotated_types.Gt}, f"{name}.{field}"
                assert kinds & {annotated_types.Le, annotated_types.Lt}, f"{name}.{field}"


# ---------------------------------------------------------------------- one test per component
def test_reach_goal_timed_reward_and_termination():
    spec = make_spec(max_steps=10, reward=[{"kind": "reach_goal", "reward": 2.0,
                                            "time_decay": 0.5}])
    eng = make_engine(spec, ROOM, agent=(2, 3))
    assert rewards(eng, W, E) == [(0.0, False), (0.0, False)]
    assert rewards(eng, S) == [(2.0 * (1 - 0.5 * 3 / 10), True)]


def test_collect_items_removes_coins_terminates_and_resets():
    rows = ["#####", "#.$$#", "#...#", "#...#", "#####"]
    eng = make_engine(make_spec(reward=[{"kind": "collect_items", "reward": 0.5}]), rows)
    assert eng.state.extras["coins_left"].tolist() == [2]
    assert rewards(eng, E) == [(0.5, False)]
    assert cell(eng, 1, 2) == Cell.EMPTY and eng.state.extras["coins_left"].tolist() == [1]
    assert rewards(eng, W, E) == [(0.0, False), (0.0, False)]  # the coin is gone
    assert rewards(eng, E) == [(0.5, True)]  # the last coin ends the episode
    # autoreset restored the level: coins back, counter back, agent at the start
    assert cell(eng, 1, 2) == Cell.COIN and cell(eng, 1, 3) == Cell.COIN
    assert eng.state.extras["coins_left"].tolist() == [2]
    assert int(eng.state.pos[0]) == 1 * 5 + 1
    assert rewards(eng, E) == [(0.5, False)]


def test_collect_items_without_termination():
    rows = ["#####", "#.$$#", "#...#", "#...#", "#####"]
    spec = make_spec(reward=[{"kind": "collect_items", "terminate_when_all": False}])
    eng = make_engine(spec, rows)
    assert rewards(eng, E, E, W, E) == [(1.0, False), (1.0, False), (0.0, False), (0.0, False)]


def test_hazard_terminating_and_not():
    rows = ["#####", "#.~.#", "#...#", "#...#", "#####"]
    eng = make_engine(make_spec(reward=[{"kind": "hazard", "penalty": 0.5}]), rows)
    assert rewards(eng, E) == [(-0.5, True)]
    spec = make_spec(reward=[{"kind": "hazard", "penalty": 0.5, "terminate": False}])
    eng = make_engine(spec, rows)
    # only entering costs: standing on lava does not, leaving does not, re-entering does
    assert rewards(eng, E, STAY, E, W) == [(-0.5, False), (0.0, False), (0.0, False),
                                          (-0.5, False)]


def test_step_penalty_every_step():
    eng = make_engine(make_spec(reward=[{"kind": "step_penalty", "cost": 0.05}]), ROOM)
    assert rewards(eng, E, N, STAY) == [(-0.05, False)] * 3


def test_ordered_subgoals_in_order_out_of_order_and_last_checkpoint():
    rows = ["#####", "#1.2#", "#...#", "#.3.#", "#####"]
    spec = make_spec(reward=[{"kind": "ordered_subgoals", "reward": 1.0, "penalty": 0.25}])
    eng = make_engine(spec, rows, agent=(2, 2))
    prog = eng.state.extras["progress"]
    assert eng.level_data["checkpoints_last"].tolist() == [3] and prog.tolist() == [0]
    assert rewards(eng, N, E) == [(0.0, False), (-0.25, False)]  # 2 before 1
    assert eng.state.extras["progress"].tolist() == [0]
    assert rewards(eng, W, W) == [(0.0, False), (1.0, False)]  # 1
    assert rewards(eng, E, W) == [(0.0, False), (0.0, False)]  # re-entering 1: nothing
    assert rewards(eng, E, E) == [(0.0, False), (1.0, False)]  # 2
    assert eng.state.extras["progress"].tolist() == [2]
    assert rewards(eng, S, W, S) == [(0.0, False), (0.0, False), (1.0, True)]  # 3 ends it
    assert eng.state.extras["progress"].tolist() == [0]  # reset with the episode


def test_ordered_subgoals_ends_at_the_levels_last_checkpoint():
    rows = ["#####", "#1.2#", "#...#", "#...#", "#####"]
    eng = make_engine(make_spec(reward=[{"kind": "ordered_subgoals"}]), rows, agent=(2, 2))
    assert rewards(eng, N, W, E, E) == [(0.0, False), (1.0, False), (0.0, False), (1.0, True)]


def test_coverage_rewards_first_visits_only():
    eng = make_engine(make_spec(reward=[{"kind": "coverage", "reward": 0.1}]), ROOM)
    assert eng.state.extras["visited"].shape == (1, eng.P)
    assert rewards(eng, W, E, W, S) == [(0.0, False), (0.1, False), (0.0, False), (0.1, False)]


def test_coverage_terminates_when_every_reachable_cell_is_visited():
    rows = ["#######", "#...#.#", "#...#.#", "#...#.#", "#######"]  # right column unreachable
    spec = make_spec(width=7, reward=[{"kind": "coverage", "terminate_when_all": True}])
    eng = make_engine(spec, rows)
    assert eng.level_data["coverable_cells"].tolist() == [9]
    snake = (E, E, S, W, W, S, E, E)
    out = rewards(eng, *snake)
    assert [t for _, t in out] == [False] * 7 + [True]
    assert all(abs(r - 0.1) < 1e-6 for r, _ in out)


def test_box_on_target_reads_box_delta_events():
    rows = ["#####", "#.B.#", "#.t.#", "#...#", "#####"]
    with_box = make_spec(reward=[{"kind": "box_on_target", "reward": 2.0}])
    without = make_spec(name="Plain")
    bank = LevelBank.from_levels([Level.from_ascii(rows, (1, 1), 0)])
    eng = GridEngine([with_box, without], num_envs=3, world_ids=[0, 0, 1], banks=[bank, bank])
    eng.reset()
    comp = eng.components["box_on_target"]
    assert eng.state.extras["boxes_left"].tolist() == [1, 1, 1]

    def run(delta: list[int] | None) -> StepContext:
        ctx = StepContext(eng, eng.state, torch.zeros(3, dtype=torch.long), None)
        if delta is not None:
            ctx.events["box_delta"] = torch.tensor(delta)
        comp.apply(ctx)
        return ctx

    ctx = run(None)  # no pushable_boxes transition: nothing happens
    assert ctx.reward_fixed.tolist() == [0.0] * 3 and not ctx.terminated.any()
    ctx = run([-1, 0, -1])  # a box left a target
    assert ctx.reward_fixed.tolist() == [-2.0, 0.0, 0.0] and not ctx.terminated.any()
    assert eng.state.extras["boxes_left"].tolist()[:2] == [2, 1]
    ctx = run([1, 1, 1])  # env 1's only box lands on a target: solved; env 2 lacks the component
    assert ctx.reward_fixed.tolist() == [2.0, 2.0, 0.0]
    assert ctx.terminated.tolist() == [False, True, False]


@pytest.mark.skipif("pushable_boxes" not in REGISTRY, reason="pushable_boxes not registered")
def test_box_on_target_with_pushable_boxes():
    rows = ["#####", "#.Bt#", "#...#", "#...#", "#####"]
    spec = make_spec(transition=[{"kind": "cardinal"}, {"kind": "pushable_boxes"}],
                     reward=[{"kind": "box_on_target"}])
    eng = make_engine(spec, rows)
    assert rewards(eng, E) == [(1.0, True)]
    assert cell(eng, 1, 2) == Cell.BOX  # autoreset restored the box


def test_inverted_goal_lava_wins_goal_loses():
    rows = ["#####", "#~.G#", "#...#", "#...#", "#####"]
    spec = make_spec(max_steps=10, reward=[{"kind": "inverted_goal", "time_decay": 0.5}])
    eng = make_engine(spec, rows, agent=(1, 2))
    assert eng.time_decay.tolist() == [0.5]
    assert rewards(eng, W) == [(1.0 - 0.5 * 1 / 10, True)]
    assert rewards(eng, E) == [(-1.0, True)]


def test_distance_shaping_steps_and_nearest_goal():
    spec = make_spec(reward=[{"kind": "distance_shaping", "scale": 2.0}])
    eng = make_engine(spec, ROOM)  # goal (3, 3), start (1, 1): phi = -4/10
    assert rewards(eng, E, W, N) == [(0.2, False), (-0.2, False), (0.0, False)]
    two_goals = ["#####", "#..G#", "#...#", "#..G#", "#####"]
    eng = make_engine(spec, two_goals, agent=(2, 1))  # both goals 3 away
    assert rewards(eng, N, S, S) == [(0.2, False), (-0.2, False), (0.2, False)]
    eng = make_engine(spec, ["#####", "#...#", "#...#", "#...#", "#####"])  # no goal
    assert rewards(eng, E, S) == [(0.0, False), (0.0, False)]


def test_distance_shaping_telescopes_over_an_episode():
    spec = make_spec(max_steps=200, reward=[{"kind": "distance_shaping", "scale": 1.5}])
    eng = make_engine(spec, ROOM, num_envs=8)
    phi = eng.components["distance_shaping"].potential
    start = phi(eng.state.level, eng.state.pos)
    total = torch.zeros(8)
    for a in torch.randint(0, 7, (60, 8), generator=torch.Generator().manual_seed(0)):
        _, r, term, trunc, _ = eng.step(a)
        assert not (term | trunc).any()
        total += r
    assert torch.allclose(total, 1.5 * (phi(eng.state.level, eng.state.pos) - start), atol=1e-5)


def test_distance_shaping_potential_is_zero_once_terminated():
    # goal terminates at phi = 0 anyway; lava terminates elsewhere: phi(end) counts as 0
    rows = ["#####", "#...#", "#~..#", "#..G#", "#####"]
    spec = make_spec(reward=[{"kind": "reach_goal", "time_decay": 0.0}, {"kind": "hazard",
                     "penalty": 0.0}, {"kind": "distance_shaping"}])
    eng = make_engine(spec, rows)
    out = rewards(eng, E, E, S, S)
    assert abs(sum(r for r, _ in out) - (1.0 + 0.4)) < 1e-6 and out[-1][1]
    out = rewards(eng, S)  # into lava, 3 from the goal: shaping 0 - (-0.4)
    assert out == [(0.4, True)]


# ---------------------------------------------------------------------- whole-batch properties
MIXED_ROWS = ["#######", "#.$~12#", "#.3G.t#", "#..B$.#", "#######"]
ALL_BUT_GOAL = ["collect_items", "hazard", "step_penalty", "ordered_subgoals", "coverage",
                "box_on_target", "inverted_goal", "distance_shaping"]


def test_rewards_are_finite_with_every_component():
    for kinds in (ALL_BUT_GOAL, ["reach_goal", *ALL_BUT_GOAL[:-2], "distance_shaping"]):
        spec = make_spec(width=7, max_steps=20, reward=[{"kind": k} for k in kinds])
        eng = make_engine(spec, MIXED_ROWS, num_envs=8)
        for a in torch.randint(0, 7, (80, 8), generator=torch.Generator().manual_seed(2)):
            _, r, _, _, _ = eng.step(a)
            assert torch.isfinite(r).all() and r.dtype == torch.float32


def test_mixed_batch_world_without_components_gets_nothing_from_them():
    rich = make_spec(name="Rich", width=7, reward=[{"kind": k} for k in ALL_BUT_GOAL])
    plain = make_spec(name="Plain", width=7)
    bank = LevelBank.from_levels([Level.from_ascii(MIXED_ROWS, (1, 1), 0)])
    mixed = GridEngine([rich, plain], num_envs=4, world_ids=[0, 1, 0, 1], banks=[bank, bank])
    alone = GridEngine(plain, num_envs=2, banks=[bank])
    mixed.reset()
    alone.reset()
    gen = torch.Generator().manual_seed(3)
    got_rich_reward = False
    for a in torch.randint(0, 4, (80, 2), generator=gen):
        _, r_m, t_m, _, _ = mixed.step(a.repeat_interleave(2))
        _, r_a, t_a, _, _ = alone.step(a)
        assert torch.equal(r_m[1::2], r_a) and torch.equal(t_m[1::2], t_a)
        assert torch.equal(mixed.state.grid[1::2], alone.state.grid)
        got_rich_reward |= bool((r_m[0::2] != 0).any())
    assert got_rich_reward
