"""Core engine semantics on tiny hand-made levels."""

from __future__ import annotations

import pytest
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


def _trajectory(spec, device: str, compile_: bool = False, steps: int = 40, n: int = 32):
    from autoworld.envs.grid.engine import GridEngine

    acts = torch.randint(0, 7, (steps, n), generator=torch.Generator().manual_seed(0))
    eng = GridEngine(spec, num_envs=n, seed=0, device=device, compile=compile_)
    frames = [eng.reset()["image"].cpu()]
    rewards = []
    for a in acts:
        obs, r, term, trunc, _ = eng.step(a.to(device))
        frames.append(obs["image"].cpu())
        rewards.append(torch.stack([r.cpu(), term.cpu().float(), trunc.cpu().float()]))
    return torch.stack(frames), torch.stack(rewards)


@pytest.mark.slow
def test_compiled_step_matches_eager():
    from autoworld.envs.catalogue import load_world

    spec = load_world("DoorKey-8x8")
    eager = _trajectory(spec, "cpu")
    compiled = _trajectory(spec, "cpu", compile_=True)
    assert torch.equal(eager[0], compiled[0]) and torch.equal(eager[1], compiled[1])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("world", ["DoorKey-8x8", "Sokoban-7x7", "FoggyRooms-11x11",
                                   "SlipperyLava-9x9", "WindyCoins-9x9"])
def test_cpu_and_cuda_trajectories_are_identical(world):
    """Counter-based randomness makes even stochastic worlds identical across devices."""
    from autoworld.envs.catalogue import load_world

    spec = load_world(world)
    cpu = _trajectory(spec, "cpu")
    cuda = _trajectory(spec, "cuda")
    assert torch.equal(cpu[0], cuda[0]) and torch.equal(cpu[1], cuda[1])


def test_egocentric_view_shows_the_carried_key_in_the_agents_cell():
    """MiniGrid draws the carried object in the agent's cell; a policy must see the key."""
    spec = make_spec(transition=[{"kind": "turn_forward"}, {"kind": "keys_doors"}],
                     observation=[{"kind": "egocentric", "size": 5}])
    eng = make_engine(spec, ["#####", "#k..#", "##D##", "#..G#", "#####"], agent=(1, 2),
                      direction=2)
    assert int(eng.observe(eng.state)["image"][0, 4, 2]) == Cell.EMPTY
    act(eng, 3)  # pick up the key in front
    image = eng.observe(eng.state)["image"][0]
    assert int(image[4, 2]) == Cell.KEY and int(image[3, 2]) == Cell.EMPTY
