"""Core engine semantics on tiny hand-made levels."""

from __future__ import annotations

import torch

from autoworld.envs.grid.symbols import Cell
from tests.conftest import act, make_engine, make_spec

ROOM = ["#####", "#...#", "#...#", "#..G#", "#####"]


def test_cardinal_moves_and_goal_terminates_with_reward():
    eng = make_engine(make_spec(), ROOM, agent=(1, 1))
    _, r, term, trunc, info = act(eng, 0)  # east
    assert int(eng.state.pos[0]) == 1 * 5 + 2
    assert not bool(term[0])
    act(eng, 1)  # south -> (2, 2)
    act(eng, 0)  # east -> (2, 3)
    _, r, term, trunc, info = act(eng, 1)  # south -> (3, 3) goal
    assert bool(term[0]) and float(r[0]) == 1.0
    # same-step autoreset: back at the start, final obs shows the agent on the goal
    assert int(eng.state.pos[0]) == 1 * 5 + 1
    assert int(info["final_obs"]["image"][0, 3, 3]) == Cell.AGENT_S


def test_walls_block_and_truncation():
    eng = make_engine(make_spec(max_steps=3), ROOM, agent=(1, 1))
    _, _, term, trunc, _ = act(eng, 3)  # north into the wall
    assert int(eng.state.pos[0]) == 6 and not bool(trunc[0])
    _, _, term, trunc, _ = act(eng, 3, 3)
    assert bool(trunc[0]) and not bool(term[0])


def test_turn_forward_controls_and_time_decay():
    spec = make_spec(transition=[{"kind": "turn_forward"}],
                     reward=[{"kind": "reach_goal", "time_decay": 0.9}], max_steps=10)
    eng = make_engine(spec, ROOM, agent=(1, 1), direction=0)
    act(eng, 2, 2)  # forward twice east -> (1, 3)
    act(eng, 1)  # turn right -> south
    _, r, term, _, _ = act(eng, 2, 2)  # forward twice -> (3, 3)
    assert bool(term[0])
    assert abs(float(r[0]) - (1 - 0.9 * 5 / 10)) < 1e-6


def test_keys_and_doors():
    rows = ["#####", "#k..#", "##D##", "#..G#", "#####"]
    spec = make_spec(transition=[{"kind": "turn_forward"}, {"kind": "keys_doors"}])
    eng = make_engine(spec, rows, agent=(1, 2), direction=2)  # facing west, key in front
    act(eng, 3)  # pick up
    assert int(eng.state.carrying[0]) == 1
    assert int(eng.state.grid[0, 1 * 5 + 1]) == Cell.EMPTY
    act(eng, 0)  # turn left -> south, door in front
    act(eng, 2)  # forward: blocked by the locked door
    assert int(eng.state.pos[0]) == 1 * 5 + 2
    act(eng, 5)  # toggle: unlock
    assert int(eng.state.grid[0, 2 * 5 + 2]) == Cell.DOOR_OPEN
    act(eng, 2, 2)
    assert int(eng.state.pos[0]) == 3 * 5 + 2


def test_same_seed_same_trajectory_and_batch_independence():
    from autoworld.envs.catalogue import load_world
    from autoworld.envs.grid.engine import GridEngine

    spec = load_world("DoorKey-8x8")
    acts = torch.randint(0, 7, (60, 16), generator=torch.Generator().manual_seed(1))
    runs = []
    for _ in range(2):
        eng = GridEngine(spec, num_envs=16, seed=3)
        obs = [eng.reset()["image"]]
        for a in acts:
            obs.append(eng.step(a)[0]["image"])
        runs.append(torch.stack(obs))
    assert torch.equal(runs[0], runs[1])
