"""Layout generators, object placement, solvability checks and level banks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autoworld.envs.catalogue import load_world
from autoworld.envs.grid import levels
from autoworld.envs.grid.layouts import draw_candidate, reachable
from autoworld.envs.grid.layouts_spec import LAYOUT_KINDS
from autoworld.envs.grid.level import Level
from autoworld.envs.grid.oracle import solve
from autoworld.envs.grid.symbols import PASSABLE, Cell
from autoworld.errors import LevelError
from tests.conftest import make_spec

GOAL = [{"kind": "reach_goal", "time_decay": 0.9}]
WORLDS = {
    "open_room": dict(height=7, width=7, layout={"kind": "open_room", "wall_density": 0.15}),
    "rooms": dict(height=11, width=11, max_steps=200,
                  layout={"kind": "rooms", "rooms_x": 2, "rooms_y": 2, "locked_doors": 1},
                  transition=[{"kind": "cardinal"}, {"kind": "keys_doors"}]),
    "maze": dict(height=9, width=9, layout={"kind": "maze", "braid": 0.0}),
    "lava_field": dict(height=8, width=8, layout={"kind": "lava_field", "lava_density": 0.3},
                       reward=[*GOAL, {"kind": "hazard"}]),
    "sokoban": dict(height=7, width=7, layout={"kind": "sokoban", "boxes": 2},
                    objects={"goal": False},
                    transition=[{"kind": "cardinal"}, {"kind": "pushable_boxes"}],
                    reward=[{"kind": "box_on_target"}, {"kind": "step_penalty"}]),
    "doorkey": dict(height=8, width=8, max_steps=200, layout={"kind": "doorkey"},
                    objects={"goal": False},
                    transition=[{"kind": "turn_forward"}, {"kind": "keys_doors"}]),
}


def world(kind: str):
    fields = {"reward": GOAL, **WORLDS[kind]}
    return make_spec(name=f"Test-{kind}", **fields)


@pytest.fixture(autouse=True)
def _fresh_bank_cache():
    levels._cache.clear()
    yield
    levels._cache.clear()


def test_every_layout_kind_has_a_test_world():
    assert set(WORLDS) == set(LAYOUT_KINDS)


@pytest.mark.parametrize("kind", LAYOUT_KINDS)
def test_layouts_are_sized_walled_deterministic_distinct_and_solvable(kind):
    spec = world(kind)
    lvls = [levels.generate_level(spec, "train", i) for i in range(6)]
    for lv in lvls:
        g = lv.grid
        assert g.shape == (spec.height, spec.width) and g.dtype == np.uint8
        assert (g[0] == Cell.WALL).all() and (g[-1] == Cell.WALL).all()
        assert (g[:, 0] == Cell.WALL).all() and (g[:, -1] == Cell.WALL).all()
        assert g[lv.agent_pos] == Cell.EMPTY and 0 <= lv.agent_dir < 4
        assert levels.structural_check(spec, lv)
    again = levels.generate_level(spec, "train", 0)
    assert np.array_equal(again.grid, lvls[0].grid) and again.agent_pos == lvls[0].agent_pos
    assert len({lv.grid.tobytes() + bytes(lv.agent_pos) for lv in lvls}) >= 5
    # the structural check agrees with the exact oracle on the first level
    assert solve(spec, lvls[0], plan=False).optimal_return > 0


def test_open_room_without_border_wraps():
    spec = make_spec(height=6, width=6, layout={"kind": "open_room", "border": False},
                     objects={"goal": False},
                     transition=[{"kind": "cardinal"}, {"kind": "wrap_edges"}],
                     reward=[{"kind": "coverage"}])
    lv = levels.generate_level(spec, "train", 0)
    assert not (lv.grid == Cell.WALL).any()


def test_rooms_connect_and_lock_the_goal_room():
    plain = make_spec(height=13, width=13, layout={"kind": "rooms", "rooms_x": 3, "rooms_y": 3})
    for i in range(4):
        lv = draw_candidate(plain, 100 + i)
        floor = ~np.isin(lv.grid, [Cell.WALL])
        assert reachable(floor, lv.agent_pos).sum() == floor.sum()  # every room connected
        # one doorway per shared wall: 12 for 3x3 rooms
        inner_walls = lv.grid[1:-1, 1:-1]
        assert (inner_walls[:, [3, 7]] != Cell.WALL).sum() == 6
        assert (inner_walls[[3, 7], :] != Cell.WALL).sum() == 6
    locked = world("rooms")
    for i in range(4):
        lv = draw_candidate(locked, 200 + i)
        g = lv.grid
        assert (g == Cell.DOOR_LOCKED).sum() == 1 and (g == Cell.KEY).sum() == 1
        # without the door the goal is cut off from the agent and the key is not
        closed = np.isin(g, [int(c) for c in PASSABLE])
        reach = reachable(closed, lv.agent_pos)
        (goal,) = map(tuple, np.argwhere(g == Cell.GOAL))
        assert not reach[goal]
        (key,) = map(tuple, np.argwhere(g == Cell.KEY))
        assert any(reach[key[0] + dr, key[1] + dc] for dr, dc in ((0, 1), (1, 0), (0, -1),
                                                                  (-1, 0)))


def test_rooms_that_do_not_fit_raise_a_clear_error():
    spec = make_spec(height=7, width=7, layout={"kind": "rooms", "rooms_x": 4, "rooms_y": 1})
    with pytest.raises(LevelError, match="width >= 9"):
        draw_candidate(spec, 0)


def test_perfect_maze_is_a_tree_and_braiding_adds_loops():
    def edges_and_nodes(g):
        floor = g != Cell.WALL
        edges = int((floor[1:] & floor[:-1]).sum() + (floor[:, 1:] & floor[:, :-1]).sum())
        return edges, int(floor.sum())

    spec = make_spec(height=11, width=11, layout={"kind": "maze"})
    braided = make_spec(height=11, width=11, layout={"kind": "maze", "braid": 1.0})
    for seed in range(3):
        g = draw_candidate(spec, seed).grid
        e, n = edges_and_nodes(g)
        assert e == n - 1  # connected and acyclic (goal/agent sit on floor cells)
        assert reachable(g != Cell.WALL, tuple(np.argwhere(g != Cell.WALL)[0])).sum() == n
        e2, n2 = edges_and_nodes(draw_candidate(braided, seed).grid)
        assert e2 - (n2 - 1) > 0  # loops


def test_lava_field_density_and_safe_path():
    spec = world("lava_field")
    for i in range(5):
        lv = levels.generate_level(spec, "train", i)
        interior = (spec.height - 2) * (spec.width - 2)
        assert abs((lv.grid == Cell.LAVA).sum() - round(0.3 * interior)) <= 1
        safe = np.isin(lv.grid, [Cell.EMPTY, Cell.GOAL])
        (goal,) = map(tuple, np.argwhere(lv.grid == Cell.GOAL))
        assert reachable(safe, lv.agent_pos)[goal]


def test_sokoban_boxes_away_from_walls_with_matching_targets():
    spec = world("sokoban")
    for i in range(5):
        g = levels.generate_level(spec, "train", i).grid
        boxes = np.argwhere(g == Cell.BOX)
        assert len(boxes) == 2 and (g == Cell.TARGET).sum() == 2
        assert not (g == Cell.GOAL).any()
        for r, c in boxes:
            assert all(g[r + dr, c + dc] != Cell.WALL
                       for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)))


def test_doorkey_matches_minigrid_structure():
    spec = load_world("DoorKey-8x8")
    h, w = spec.height, spec.width
    for i in range(10):
        lv = levels.generate_level(spec, "train", i)
        g = lv.grid
        (split,) = [c for c in range(2, w - 2) if (g[1:-1, c] != Cell.EMPTY).all()
                    and (g[:, c] == Cell.DOOR_LOCKED).sum() == 1]
        assert 2 <= split <= w - 3
        assert ((g[:, split] == Cell.WALL) | (g[:, split] == Cell.DOOR_LOCKED)).all()
        assert (g == Cell.DOOR_LOCKED).sum() == 1
        (key,) = np.argwhere(g == Cell.KEY)
        assert key[1] < split and lv.agent_pos[1] < split
        assert g[h - 2, w - 2] == Cell.GOAL and (g == Cell.GOAL).sum() == 1


def test_place_objects_places_every_object_kind():
    spec = make_spec(height=10, width=10, objects={
        "goal": True, "coins": 3, "lava": 0.1, "ice": 0.2, "cracked": 0.1, "teleporters": True,
        "checkpoints": 2}, reward=[*GOAL, {"kind": "collect_items"}, {"kind": "hazard"}])
    floor = 64
    lv = levels.generate_level(spec, "train", 0)
    g = lv.grid
    count = {c: int((g == c).sum()) for c in Cell if c < 18}
    assert count[Cell.GOAL] == 1 and count[Cell.COIN] == 3
    assert count[Cell.TELEPORT_A] == 1 and count[Cell.TELEPORT_B] == 1
    assert count[Cell.CHECKPOINT_1] == 1 and count[Cell.CHECKPOINT_2] == 1
    assert count[Cell.CHECKPOINT_3] == 0
    assert count[Cell.LAVA] == round(0.1 * floor) and count[Cell.CRACKED] == round(0.1 * floor)
    assert count[Cell.ICE] == round(0.2 * floor)
    assert g[lv.agent_pos] == Cell.EMPTY
    again = levels.generate_level(spec, "train", 0)
    assert np.array_equal(again.grid, g)


def test_structural_check_rejects_unreachable_rewards():
    spec = make_spec(transition=[{"kind": "cardinal"}, {"kind": "keys_doors"}])
    walled = Level.from_ascii(["#####", "#...#", "#####", "#..G#", "#####"], (1, 1), 0)
    assert not levels.structural_check(spec, walled)
    door_no_key = Level.from_ascii(["#####", "#...#", "##D##", "#..G#", "#####"], (1, 1), 0)
    assert not levels.structural_check(spec, door_no_key)
    door_key = Level.from_ascii(["#####", "#k..#", "##D##", "#..G#", "#####"], (1, 2), 0)
    assert levels.structural_check(spec, door_key)
    lava = make_spec(reward=[*GOAL, {"kind": "hazard"}])
    moat = Level.from_ascii(["#####", "#...#", "#~~~#", "#..G#", "#####"], (1, 1), 0)
    assert not levels.structural_check(lava, moat)
    assert levels.structural_check(make_spec(), moat)  # lava without 'hazard' is plain floor
    assert not levels.is_solvable(lava, moat, exact=True)


def test_locked_layout_without_keys_doors_fails_early():
    spec = make_spec(height=8, width=8, layout={"kind": "doorkey"})
    with pytest.raises(LevelError, match="keys_doors"):
        levels.generate_level(spec, "train", 0)


def test_banks_have_default_sizes_and_disjoint_seeds():
    spec = make_spec(height=5, width=5, max_steps=20)
    banks = {split: levels.bank(spec, split) for split in levels.SPLITS}
    assert {s: len(b) for s, b in banks.items()} == levels.DEFAULT_SIZES
    seeds = {s: set(b.seeds.tolist()) for s, b in banks.items()}
    assert not seeds["train"] & seeds["test"] and not seeds["train"] & seeds["validation"]
    assert not seeds["validation"] & seeds["test"]
    assert banks["test"].info["optimal_exact"] == [True] * 10
    assert all(v > 0 for v in banks["test"].info["optimal_return"])
    assert len(levels.bank(spec, "train", 7)) == 7
    with pytest.raises(LevelError, match="unknown split"):
        levels.bank(spec, "dev")


def test_bank_cache_evicts_the_least_recently_used(monkeypatch):
    built = []
    build = levels._build_bank
    monkeypatch.setattr(levels, "_build_bank", lambda spec, split, n: built.append(n)
                        or build(spec, split, n))
    monkeypatch.setattr(levels, "_CACHE_SIZE", 2)
    monkeypatch.setattr(levels, "_cache", type(levels._cache)())
    spec = make_spec(name="LruBanks", height=5, width=5, max_steps=12)
    first = levels.bank(spec, "train", 3)
    levels.bank(spec, "train", 4)
    again = levels.bank(spec, "train", 3)  # a hit: now the most recently used
    assert np.array_equal(first.grids, again.grids)
    levels.bank(spec, "train", 5)  # evicts size 4, the least recently used, not size 3
    levels.bank(spec, "train", 3)
    assert built == [3, 4, 5]
    levels.bank(spec, "train", 4)
    assert built == [3, 4, 5, 4]


def test_catalogue_file_is_deterministic_and_loaded(tmp_path, monkeypatch):
    spec = make_spec(name="Tiny", height=5, width=5, max_steps=12)
    path = tmp_path / "Tiny.json"
    monkeypatch.setattr(levels, "catalogue_levels_path", lambda s: path)
    monkeypatch.setattr(levels, "RANDOM_EPISODES", 16)
    monkeypatch.setattr(levels, "DEFAULT_SIZES", {"train": 8, "validation": 2, "test": 3})
    text = levels.catalogue_file_text(spec)
    assert text == levels.catalogue_file_text(spec)  # byte for byte
    data = json.loads(text)
    assert data["content_hash"] == spec.content_hash
    assert [len(data["splits"][s]) for s in ("validation", "test")] == [2, 3]
    entry = data["splits"]["test"][0]
    assert {"rows", "agent", "dir", "seed", "optimal_return", "optimal_exact", "random_return",
            "num_states"} <= set(entry)
    entry["optimal_return"] = 0.123  # a marker only a loaded file can carry
    path.write_text(json.dumps(data))
    loaded = levels.bank(spec, "test")
    assert loaded.info["source"] == "catalogue"
    assert loaded.info["optimal_return"][0] == 0.123
    assert loaded.level(0).to_ascii() == entry["rows"]
    # a file written for other content is ignored
    levels._cache.clear()
    data["content_hash"] = "0" * 16
    path.write_text(json.dumps(data))
    assert levels.bank(spec, "test").info["source"] == "generated"


def _catalogue_files():
    from autoworld.envs.catalogue import LEVELS_DIR

    return sorted(p.stem for p in LEVELS_DIR.glob("*.json"))


@pytest.mark.parametrize("name", _catalogue_files())
def test_catalogue_level_files_are_current(name):
    spec = load_world(name)
    data = json.loads(levels.catalogue_levels_path(spec).read_text())
    if data["content_hash"] != spec.content_hash:
        pytest.fail(f"{name}.json is stale; run python -m autoworld.envs.grid.levels "
                    f"--rebuild-catalogue --worlds {name}")
    for split in levels.CATALOGUE_SPLITS:
        b = levels.bank(spec, split)
        assert b.info["source"] == "catalogue" and len(b) == levels.DEFAULT_SIZES[split]
        for i in range(len(b)):
            assert levels.structural_check(spec, b.level(i))
            assert b.info["optimal_return"][i] >= b.info["random_return"][i]


def test_prepare_banks_batches_splits_with_identical_levels_and_values():
    """Both exact splits drawn and solved in one batched pass equal the split-by-split banks."""
    from autoworld.envs.grid import levels as level_gen

    spec = make_spec(name="PrepTest", height=6, width=6, max_steps=24,
                     objects={"lava": 0.08},
                     reward=[{"kind": "reach_goal", "time_decay": 0.5},
                             {"kind": "hazard", "penalty": 1.0}])
    level_gen._cache.clear()
    one_by_one = {s: level_gen.bank(spec, s, size=n) for s, n in (("test", 3),
                                                                    ("validation", 2))}
    level_gen._cache.clear()
    level_gen.prepare_banks(spec, {"test": 3, "validation": 2})
    assert (spec.name, spec.content_hash, "test", 3) in level_gen._cache
    for split, b in one_by_one.items():
        again = level_gen.bank(spec, split, size=len(b))
        assert np.array_equal(again.grids, b.grids) and again.seeds.tolist() == b.seeds.tolist()
        assert again.info == b.info
    level_gen._cache.clear()
