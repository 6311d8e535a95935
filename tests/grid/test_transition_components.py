"""Semantics of the grid transition components on tiny hand-made levels."""

from __future__ import annotations

import pytest
import torch

from autoworld.envs.grid.engine import GridEngine
from autoworld.envs.grid.level import Level, LevelBank
from autoworld.envs.grid.symbols import Cell
from autoworld.errors import SpecError
from tests.conftest import act, make_engine, make_spec

W = 5
ROOM = ["#####", "#...#", "#...#", "#...#", "#####"]
EAST, SOUTH, WEST, NORTH = 0, 1, 2, 3  # cardinal actions (and directions)


def rc(eng: GridEngine, env: int = 0) -> tuple[int, int]:
    """The (row, col) of env's agent."""
    p = int(eng.state.pos[env])
    return divmod(p, eng.W)


def cell(eng: GridEngine, r: int, c: int, env: int = 0) -> int:
    return int(eng.state.grid[env, r * eng.W + c])


def spec_with(*extra: dict, **fields):
    return make_spec(transition=[{"kind": "cardinal"}, *extra], **fields)


def step(eng: GridEngine, action: int, outcomes: dict | None = None):
    return eng.step(torch.full((eng.num_envs,), action, dtype=torch.long), outcomes=outcomes)


# ================================================================== permuted_controls
def test_permuted_controls_remap_actions():
    perm = [2, 3, 0, 1, 4, 5, 6]  # east <-> west, south <-> north
    eng = make_engine(spec_with({"kind": "permuted_controls", "permutation": perm}), ROOM,
                      agent=(2, 2))
    act(eng, EAST)  # executed as west
    assert rc(eng) == (2, 1)
    act(eng, NORTH)  # executed as south
    assert rc(eng) == (3, 1)
    act(eng, WEST)  # executed as east
    assert rc(eng) == (3, 2)


@pytest.mark.parametrize("perm", [[0, 0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6, 7]])
def test_permuted_controls_rejects_non_permutations(perm):
    with pytest.raises(SpecError, match="permutation"):
        spec_with({"kind": "permuted_controls", "permutation": perm})


# ================================================================== slippery
def test_slippery_prob_one_always_slips_and_prob_zero_never():
    # With prob 1 the action is uniformly random: over many envs, "east" moves go everywhere.
    eng = make_engine(spec_with({"kind": "slippery", "prob": 1.0}), ROOM, agent=(2, 2),
                      num_envs=256)
    act(eng, EAST)
    pos = eng.state.pos
    for r, c in ((2, 3), (3, 2), (2, 1), (1, 2), (2, 2)):  # moves 0..3, and 4..6 stay
        assert bool((pos == r * W + c).any())
    stayed = float((pos == 2 * W + 2).float().mean())
    assert 0.3 < stayed < 0.55  # 3/7 of the actions do not move
    assert bool((pos != 2 * W + 3).float().mean() > 0.7)

    eng = make_engine(spec_with({"kind": "slippery", "prob": 0.0}), ROOM, agent=(2, 2),
                      num_envs=64)
    act(eng, EAST)
    assert bool((eng.state.pos == 2 * W + 3).all())


def test_slippery_outcome_override_and_probs():
    eng = make_engine(spec_with({"kind": "slippery", "prob": 0.7}), ROOM, agent=(2, 2))
    probs = eng.components["slippery"].outcome_probs()
    assert probs.shape == (1, 8) and probs.dtype == torch.float32
    assert torch.allclose(probs[0], torch.tensor([0.3] + [0.1] * 7))
    step(eng, EAST, {"slippery": torch.tensor([2])})  # outcome 2: action 1 (south)
    assert rc(eng) == (3, 2)
    step(eng, EAST, {"slippery": torch.tensor([0])})  # no slip: east as chosen
    assert rc(eng) == (3, 3)
    step(eng, SOUTH, {"slippery": torch.tensor([4])})  # outcome 4: action 3 (north)
    assert rc(eng) == (2, 3)


# ================================================================== wind
def test_wind_prob_one_always_pushes():
    eng = make_engine(spec_with({"kind": "wind", "direction": 1, "prob": 1.0}), ROOM,
                      agent=(1, 1))
    act(eng, EAST)  # east to (1, 2), then blown south to (2, 2)
    assert rc(eng) == (2, 2)
    assert int(eng.state.dir[0]) == EAST  # the wind does not turn the agent
    act(eng, EAST)  # (2, 3), blown to (3, 3)
    assert rc(eng) == (3, 3)
    act(eng, WEST)  # (3, 2); the wall below blocks the wind
    assert rc(eng) == (3, 2)


def test_wind_outcomes_and_prob_zero():
    eng = make_engine(spec_with({"kind": "wind", "direction": 3, "prob": 0.25}), ROOM,
                      agent=(3, 1))
    probs = eng.components["wind"].outcome_probs()
    assert torch.allclose(probs, torch.tensor([[0.75, 0.25]]))
    step(eng, EAST, {"wind": torch.tensor([0])})
    assert rc(eng) == (3, 2)
    step(eng, EAST, {"wind": torch.tensor([1])})  # (3, 3) then north to (2, 3)
    assert rc(eng) == (2, 3)

    eng = make_engine(spec_with({"kind": "wind", "direction": 3, "prob": 0.0}), ROOM,
                      agent=(3, 1), num_envs=32)
    act(eng, EAST, EAST)
    assert bool((eng.state.pos == 3 * W + 3).all())


# ================================================================== pushable_boxes
def test_box_pushed_until_it_hits_a_wall():
    rows = ["######", "#.B..#", "#....#", "#....#", "######"]
    eng = make_engine(spec_with({"kind": "pushable_boxes"}, width=6), rows, agent=(1, 1))
    act(eng, EAST)  # push the box from (1, 2) to (1, 3); agent to (1, 2)
    assert rc(eng) == (1, 2)
    assert cell(eng, 1, 3) == Cell.BOX and cell(eng, 1, 2) == Cell.EMPTY
    act(eng, EAST)  # box to (1, 4)
    assert rc(eng) == (1, 3) and cell(eng, 1, 4) == Cell.BOX
    act(eng, EAST)  # wall behind the box: neither moves
    assert rc(eng) == (1, 3) and cell(eng, 1, 4) == Cell.BOX


def test_box_does_not_push_into_another_box():
    rows = ["######", "#.BB.#", "#....#", "#....#", "######"]
    eng = make_engine(spec_with({"kind": "pushable_boxes"}, width=6), rows, agent=(1, 1))
    act(eng, EAST)
    assert rc(eng) == (1, 1)
    assert cell(eng, 1, 2) == Cell.BOX and cell(eng, 1, 3) == Cell.BOX


def test_box_onto_and_off_target_reports_box_delta():
    rows = ["######", "#.Bt.#", "#....#", "#....#", "######"]
    eng = make_engine(spec_with({"kind": "pushable_boxes"}, width=6), rows, agent=(1, 1))
    ctx = eng.transition(eng.state, torch.tensor([EAST]))
    assert ctx.events["box_delta"].tolist() == [1]
    assert cell(eng, 1, 3) == Cell.BOX_ON_TARGET and rc(eng) == (1, 2)
    ctx = eng.transition(eng.state, torch.tensor([EAST]))  # off the target onto the floor
    assert ctx.events["box_delta"].tolist() == [-1]
    assert cell(eng, 1, 3) == Cell.TARGET and cell(eng, 1, 4) == Cell.BOX
    assert rc(eng) == (1, 3)  # the agent stands on the freed target
    ctx = eng.transition(eng.state, torch.tensor([SOUTH]))  # nothing pushed
    assert ctx.events["box_delta"].tolist() == [0]


# ================================================================== wrap_edges
def test_wrap_edges_walks_off_the_east_edge_onto_column_zero():
    rows = ["....."] * 5
    spec = spec_with({"kind": "wrap_edges"}, layout={"kind": "open_room", "border": False})
    eng = make_engine(spec, rows, agent=(2, 4))
    act(eng, EAST)
    assert rc(eng) == (2, 0)
    act(eng, NORTH, NORTH, NORTH)  # (1, 0), (0, 0), then wrap to (4, 0)
    assert rc(eng) == (4, 0)
    # without the component the frame edge is a wall
    eng = make_engine(spec_with(layout={"kind": "open_room", "border": False}), rows,
                      agent=(2, 4))
    act(eng, EAST)
    assert rc(eng) == (2, 4)


# ================================================================== ice_sliding
def test_ice_slides_until_blocked_or_off_the_ice():
    rows = ["########", "#.__...#", "#.__#..#", "#......#", "########"]
    spec = spec_with({"kind": "ice_sliding"}, height=5, width=8)
    # slides over the ice and stops on the first floor cell after it
    eng = make_engine(spec, rows, agent=(1, 1))
    act(eng, EAST)
    assert rc(eng) == (1, 4)
    # stops on the last ice cell before a wall
    eng = make_engine(spec, rows, agent=(2, 1))
    act(eng, EAST)
    assert rc(eng) == (2, 3)
    # an agent that did not move does not slide, even on ice
    act(eng, EAST)
    assert rc(eng) == (2, 3)
    # off the ice onto floor, and on floor: one step at a time
    act(eng, SOUTH)
    assert rc(eng) == (3, 3)
    act(eng, WEST)
    assert rc(eng) == (3, 2)
    # without the component ice is plain floor
    eng = make_engine(spec_with(height=5, width=8), rows, agent=(1, 1))
    act(eng, EAST)
    assert rc(eng) == (1, 2)


# ================================================================== teleporters
def test_teleporters_both_ways():
    rows = ["#####", "#.T.#", "#...#", "#.U.#", "#####"]
    eng = make_engine(spec_with({"kind": "teleporters"}), rows, agent=(1, 1))
    assert eng.level_data["teleport_a"].tolist() == [1 * W + 2]
    assert eng.level_data["teleport_b"].tolist() == [3 * W + 2]
    act(eng, EAST)  # onto A -> B
    assert rc(eng) == (3, 2)
    act(eng, EAST)  # off B, no teleport
    assert rc(eng) == (3, 3)
    act(eng, WEST)  # onto B -> A
    assert rc(eng) == (1, 2)


def test_teleporter_without_partner_does_nothing():
    rows = ["#####", "#.T.#", "#...#", "#...#", "#####"]
    eng = make_engine(spec_with({"kind": "teleporters"}), rows, agent=(1, 1))
    assert eng.level_data["teleport_b"].tolist() == [eng.sentinel]
    act(eng, EAST)
    assert rc(eng) == (1, 2)


# ================================================================== collapsing_floor
@pytest.mark.parametrize(("becomes", "code"), [("lava", Cell.LAVA), ("wall", Cell.WALL)])
def test_collapsing_floor(becomes, code):
    rows = ["#####", "#.%.#", "#...#", "#...#", "#####"]
    eng = make_engine(spec_with({"kind": "collapsing_floor", "becomes": becomes}), rows,
                      agent=(1, 1))
    act(eng, EAST)  # onto the cracked cell: still intact
    assert cell(eng, 1, 2) == Cell.CRACKED
    act(eng, NORTH)  # bump the wall: not left
    assert cell(eng, 1, 2) == Cell.CRACKED
    act(eng, EAST)  # leave it: it collapses
    assert rc(eng) == (1, 3) and cell(eng, 1, 2) == code
    if becomes == "wall":
        act(eng, WEST)
        assert rc(eng) == (1, 3)


# ================================================================== mixed batches
MIXED_CASES = {
    "permuted_controls": ({"kind": "permuted_controls", "permutation": [2, 1, 0, 3, 4, 5, 6]},
                          ROOM, (2, 2), EAST, (2, 1), (2, 3)),
    "slippery": ({"kind": "slippery", "prob": 1.0}, ROOM, (2, 2), EAST, None, (2, 3)),
    "wind": ({"kind": "wind", "direction": 1, "prob": 1.0}, ROOM, (1, 1), EAST, (2, 2), (1, 2)),
    "ice_sliding": ({"kind": "ice_sliding"}, ["#####", "#.__#", "#...#", "#...#", "#####"],
                    (1, 1), EAST, (1, 3), (1, 2)),
    "teleporters": ({"kind": "teleporters"}, ["#####", "#.T.#", "#...#", "#.U.#", "#####"],
                    (1, 1), EAST, (3, 2), (1, 2)),
    "pushable_boxes": ({"kind": "pushable_boxes"}, ["#####", "#.B.#", "#...#", "#...#", "#####"],
                       (1, 1), EAST, (1, 2), (1, 1)),
    "collapsing_floor": ({"kind": "collapsing_floor"}, ["#####", "#%..#", "#...#", "#...#",
                                                        "#####"], (1, 1), EAST, (1, 2), (1, 2)),
}


@pytest.mark.parametrize("name", sorted(MIXED_CASES))
def test_mixed_batch_applies_component_only_where_present(name):
    comp, rows, agent, action, pos_with, pos_without = MIXED_CASES[name]
    spec_a = spec_with(comp, name="With")
    spec_b = spec_with(name="Without")
    bank = LevelBank.from_levels([Level.from_ascii(rows, agent, 0)])
    eng = GridEngine([spec_a, spec_b], num_envs=2, banks=[bank, bank])
    eng.reset()
    before = eng.state.grid.clone()
    out = eng.transition(eng.state, torch.tensor([action, action]),
                         {"slippery": torch.tensor([2, 2])} if name == "slippery" else None)
    if name == "slippery":  # forced outcome 2 (south) in env 0 only
        pos_with = (agent[0] + 1, agent[1])
    assert rc(eng, 0) == pos_with
    assert rc(eng, 1) == pos_without
    assert torch.equal(eng.state.grid[1], before[1])  # the world without it is untouched
    if name == "pushable_boxes":
        assert out.events["box_delta"].tolist() == [0, 0]
        assert cell(eng, 1, 3, env=0) == Cell.BOX and cell(eng, 1, 2, env=1) == Cell.BOX
    if name == "collapsing_floor":
        assert cell(eng, 1, 1, env=0) == Cell.LAVA and cell(eng, 1, 1, env=1) == Cell.CRACKED
    for c in eng.stochastic_components():  # neutral outcome distribution where absent
        assert float(c.outcome_probs()[1, 0]) == 1.0


# ================================================================== determinism
def _trajectory(seed: int) -> torch.Tensor:
    wind = {"kind": "wind", "direction": 2, "prob": 0.5}
    spec = spec_with({"kind": "slippery", "prob": 0.5}, wind, height=7, width=7, max_steps=200)
    eng = make_engine(spec, ["#######"] + ["#.....#"] * 5 + ["#######"], agent=(3, 3),
                      num_envs=8, seed=seed, final_obs=False)
    actions = torch.randint(0, 4, (40, 8), generator=torch.Generator().manual_seed(0))
    out = []
    for a in actions:
        eng.step(a)
        out.append(eng.state.pos.clone())
    return torch.stack(out)


def test_same_seed_same_trajectory_with_slippery_and_wind():
    a, b, c = _trajectory(5), _trajectory(5), _trajectory(6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)  # the randomness is real and keyed by the seed
