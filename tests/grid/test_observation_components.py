"""Semantics of every grid observation component on tiny hand-made levels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autoworld.envs.grid.components import components_of
from autoworld.envs.grid.components.observation import image_to_text, sight_lines
from autoworld.envs.grid.engine import GridEngine
from autoworld.envs.grid.level import Level, LevelBank
from autoworld.envs.grid.symbols import NUM_CELL_TYPES, NUM_SYMBOLS, Cell
from autoworld.envs.grid.tiles import tile_atlas
from autoworld.errors import SpecError
from tests.conftest import act, make_engine, make_spec

ROOM7 = ["#######", "#.....#", "#.....#", "#.....#", "#.....#", "#.....#", "#######"]
OPEN5 = [".....", ".....", ".....", ".....", "....."]


def ego(size: int = 5, *extra: dict, **fields):
    return make_spec(observation=[{"kind": "egocentric", "size": size}, *extra],
                     height=7, width=7, **fields)


def full(*extra: dict, **fields):
    return make_spec(observation=[{"kind": "full_grid"}, *extra], **fields)


def with_cell(rows: list[str], r: int, c: int, ch: str) -> list[str]:
    rows = list(rows)
    rows[r] = rows[r][:c] + ch + rows[r][c + 1:]
    return rows


def image(eng: GridEngine) -> torch.Tensor:
    return eng.observe(eng.state)["image"]


# ============================================================================ views
@pytest.mark.parametrize(
    ("direction", "key_at"),
    # the key is 2 cells ahead of the agent (at (3, 3)) and 1 cell to its right
    [(0, (4, 5)), (1, (5, 2)), (2, (2, 1)), (3, (1, 4))],
)
def test_egocentric_rotates_with_the_agent(direction, key_at):
    eng = make_engine(ego(5), with_cell(ROOM7, *key_at, "k"), agent=(3, 3), direction=direction)
    img = image(eng)[0]
    assert img.shape == (5, 5)
    keys = (img == Cell.KEY).nonzero().tolist()
    assert keys == [[2, 3]]  # forward 2 -> row 4 - 2; right 1 -> column 2 + 1
    assert int(img[4, 2]) == Cell.EMPTY  # the agent's own cell (no arrow in the egocentric view)


def test_egocentric_cells_outside_the_world_read_as_wall():
    eng = make_engine(make_spec(observation=[{"kind": "egocentric", "size": 5}]), OPEN5,
                      agent=(0, 0), direction=3)  # top-left corner of a wall-less room, north
    img = image(eng)[0]
    assert (img[:4] == Cell.WALL).all()  # everything ahead is outside
    assert (img[4, :2] == Cell.WALL).all()  # to the left: outside
    assert (img[4, 2:] == Cell.EMPTY).all()  # own cell and the floor to the right


def test_full_grid_draws_the_agent_arrow_and_follows_it():
    rows = ["#####", "#...#", "#.~.#", "#..G#", "#####"]
    eng = make_engine(full(), rows, agent=(1, 1), direction=0)
    img = image(eng)[0]
    expected = torch.from_numpy(Level.from_ascii(rows, (1, 1), 0).grid)
    expected[1, 1] = int(Cell.AGENT_E)
    assert torch.equal(img, expected)
    obs, *_ = act(eng, 1)  # south
    assert int(obs["image"][0, 2, 1]) == Cell.AGENT_S
    assert int(obs["image"][0, 1, 1]) == Cell.EMPTY


def test_full_grid_mixed_sizes_pad_the_smaller_world():
    a = make_spec(name="A", height=5, width=5)
    b = make_spec(name="B", height=7, width=7)
    banks = [LevelBank.from_levels([Level.from_ascii(r, (1, 1), 0)]) for r in (OPEN5, ROOM7)]
    eng = GridEngine([a, b], num_envs=2, banks=banks)
    img = eng.reset()["image"]
    assert img.shape == (2, 7, 7)
    assert (img[0, 5:] == Cell.PAD).all() and (img[0, :, 5:] == Cell.PAD).all()
    assert int(img[0, 1, 1]) == Cell.AGENT_E and int(img[0, 0, 0]) == Cell.EMPTY
    assert not (img[1] == Cell.PAD).any()


def test_mixed_egocentric_sizes_pad_the_smaller_view():
    rows = with_cell(ROOM7, 1, 4, "k")
    a = ego(5, name="A")
    b = ego(7, name="B")
    bank = LevelBank.from_levels([Level.from_ascii(rows, (3, 3), 3)])
    eng = GridEngine([a, b], num_envs=2, banks=[bank, bank])
    img = eng.reset()["image"]
    assert img.shape == (2, 7, 7)
    alone5 = image(make_engine(a, rows, agent=(3, 3), direction=3))[0]
    alone7 = image(make_engine(b, rows, agent=(3, 3), direction=3))[0]
    window = torch.zeros(7, 7, dtype=torch.bool)
    window[2:, 1:6] = True  # the size-5 view keeps the agent at the bottom middle
    assert (img[0][~window] == Cell.PAD).all()
    assert torch.equal(img[0][window].view(5, 5), alone5)
    assert torch.equal(img[1], alone7)
    assert eng.observation_spec()["image"][0] == (7, 7)


def test_full_grid_batch_mate_does_not_widen_the_egocentric_image():
    """An egocentric world's size sets the view; a full-grid batch mate's default must not."""
    a = make_spec(name="A", observation=[{"kind": "full_grid"}])
    b = make_spec(name="B", observation=[{"kind": "egocentric", "size": 3}])
    bank = LevelBank.from_levels([Level.from_ascii(OPEN5, (2, 2), 0)])
    eng = GridEngine([a, b], num_envs=2, banks=[bank, bank])
    assert eng.reset()["image"].shape == (2, 5, 5)


# ============================================================================ filters
LOS_ROOM = with_cell(ROOM7, 3, 3, "#")  # agent at (5, 3) facing north: block 2 cells ahead


@pytest.mark.parametrize("blocker", ["#", "D", "B"])
def test_line_of_sight_hides_cells_behind_an_opaque_cell(blocker):
    rows = with_cell(ROOM7, 3, 3, blocker)
    plain = image(make_engine(ego(5), rows, agent=(5, 3), direction=3))[0]
    img = image(make_engine(ego(5, {"kind": "line_of_sight"}), rows, agent=(5, 3),
                            direction=3))[0]
    hidden = {tuple(x) for x in (img == Cell.UNSEEN).nonzero().tolist()}
    assert hidden == {(0, 1), (0, 2), (0, 3), (1, 2)}
    assert int(img[2, 2]) == int(plain[2, 2]) != Cell.EMPTY  # the blocker itself is visible
    assert int(img[3, 2]) == Cell.EMPTY and int(img[4, 2]) == Cell.EMPTY  # in front, own cell
    seen = img != Cell.UNSEEN
    assert torch.equal(img[seen], plain[seen])


def test_line_of_sight_sees_through_floor_lava_and_past_corners():
    rows = with_cell(ROOM7, 3, 3, "~")
    img = image(make_engine(ego(5, {"kind": "line_of_sight"}), rows, agent=(5, 3),
                            direction=3))[0]
    assert not (img == Cell.UNSEEN).any()
    # the agent's lines never include its own cell or their end cell
    lines = sight_lines(5)
    assert not (lines == 4 * 5 + 2).any()
    for n in range(25):
        assert n not in lines[n]


def test_random_mask_zero_changes_nothing():
    plain = image(make_engine(ego(5), ROOM7, agent=(3, 3), num_envs=4))
    eng = make_engine(ego(5, {"kind": "random_mask", "fraction": 0.0}), ROOM7, agent=(3, 3),
                      num_envs=4)
    assert torch.equal(image(eng), plain)


def test_random_mask_hides_about_fraction_of_cells_fresh_every_step():
    spec = ego(7, {"kind": "random_mask", "fraction": 0.3})
    eng = make_engine(spec, ROOM7, agent=(3, 3), num_envs=256, seed=1)
    img = image(eng)
    frac = float((img == Cell.UNSEEN).float().mean())
    assert abs(frac - 0.3) < 0.02
    obs, *_ = act(eng, 4)  # cardinal "pick up" with nothing in front: the world is unchanged
    assert not torch.equal(obs["image"], img)
    assert abs(float((obs["image"] == Cell.UNSEEN).float().mean()) - 0.3) < 0.02


def test_random_mask_keeps_the_agent_mark():
    eng = make_engine(full({"kind": "random_mask", "fraction": 0.9}), OPEN5, agent=(2, 2),
                      num_envs=64)
    img = image(eng)
    assert (img[:, 2, 2] == Cell.AGENT_E).all()
    assert float((img == Cell.UNSEEN).float().mean()) > 0.8


def test_symbol_noise_zero_and_positive():
    plain = image(make_engine(ego(7), ROOM7, agent=(3, 3), num_envs=256))
    same = make_engine(ego(7, {"kind": "symbol_noise", "prob": 0.0}), ROOM7, agent=(3, 3),
                       num_envs=256)
    assert torch.equal(image(same), plain)
    noisy = image(make_engine(ego(7, {"kind": "symbol_noise", "prob": 0.5}), ROOM7,
                              agent=(3, 3), num_envs=256))
    changed = float((noisy != plain).float().mean())
    assert abs(changed - 0.5 * (NUM_CELL_TYPES - 1) / NUM_CELL_TYPES) < 0.02
    assert int(noisy.max()) < NUM_CELL_TYPES
    assert set(noisy[noisy != plain].unique().tolist()) == set(range(NUM_CELL_TYPES))


def test_permuted_symbols_swap_what_the_agent_sees():
    rows = ["#####", "#.~.#", "#...#", "#..G#", "#####"]
    spec = full({"kind": "permuted_symbols", "swaps": [["lava", "goal"], ["empty", "wall"]]})
    img = image(make_engine(spec, rows, agent=(1, 1)))[0]
    assert int(img[1, 2]) == Cell.GOAL  # lava looks like the goal
    assert int(img[3, 3]) == Cell.LAVA
    assert int(img[0, 0]) == Cell.EMPTY and int(img[2, 2]) == Cell.WALL
    assert int(img[1, 1]) == Cell.AGENT_E  # observation-only symbols are kept


@pytest.mark.parametrize(
    "swaps",
    [[["lava", "lava"]], [["lava", "goal"], ["goal", "wall"]], [["lava", "agent_n"]], []],
)
def test_permuted_symbols_rejects_bad_swaps(swaps):
    with pytest.raises(SpecError):
        full({"kind": "permuted_symbols", "swaps": swaps})


def test_permuted_symbols_is_neutral_for_batch_mates():
    rows = ["#####", "#.~.#", "#...#", "#..G#", "#####"]
    a = full({"kind": "permuted_symbols"}, name="A")
    b = full(name="B")
    bank = LevelBank.from_levels([Level.from_ascii(rows, (1, 1), 0)])
    img = GridEngine([a, b], num_envs=2, banks=[bank, bank]).reset()["image"]
    assert int(img[0, 1, 2]) == Cell.GOAL and int(img[1, 1, 2]) == Cell.LAVA


# ============================================================================ outputs
def test_agent_features_values():
    rows = ["#####", "#.k.#", "#...#", "#..G#", "#####"]
    spec = full({"kind": "agent_features"},
                transition=[{"kind": "cardinal"}, {"kind": "keys_doors"}])
    eng = make_engine(spec, rows, agent=(1, 1), direction=0)
    f = eng.observe(eng.state)["features"][0]
    assert torch.allclose(f, torch.tensor([1 / 5, 1 / 5, 1, 0, 0, 0, 0, 0]))
    obs, *_ = act(eng, 4)  # pick up the key in front (east)
    assert torch.allclose(obs["features"][0], torch.tensor([1 / 5, 1 / 5, 1, 0, 0, 0, 1, 1 / 50]))
    obs, *_ = act(eng, 1)  # south
    assert torch.allclose(obs["features"][0], torch.tensor([2 / 5, 1 / 5, 0, 1, 0, 0, 1, 2 / 50]))
    assert obs["features"].dtype == torch.float32


def test_text_decodes_to_ascii_rows():
    rows = ["#####", "#.~.#", "#k..#", "#..G#", "#####"]
    eng = make_engine(full({"kind": "text"}), rows, agent=(2, 2), direction=3)
    obs = eng.observe(eng.state)
    expected = ["#####", "#.~.#", "#k^.#", "#..G#", "#####"]
    text = obs["text"][0].numpy()
    assert [bytes(row).decode("ascii") for row in text] == expected
    assert image_to_text(obs["image"][0].numpy()) == "\n".join(expected)
    with pytest.raises(ValueError):
        image_to_text(obs["image"].numpy())


def test_rgb_pixels_are_the_atlas_tiles():
    rows = ["#####", "#.~.#", "#k..#", "#..G#", "#####"]
    eng = make_engine(full({"kind": "rgb", "tile": 4}), rows, agent=(2, 2), direction=1)
    obs = eng.observe(eng.state)
    img, rgb = obs["image"][0].numpy(), obs["rgb"][0].numpy()
    assert rgb.shape == (20, 20, 3) and rgb.dtype == np.uint8
    atlas = tile_atlas(4)
    for r in range(5):
        for c in range(5):
            assert np.array_equal(rgb[r * 4:(r + 1) * 4, c * 4:(c + 1) * 4], atlas[img[r, c]])
    assert img[2, 2] == Cell.AGENT_S


@pytest.mark.parametrize(("kind", "key"), [("agent_features", "features"), ("text", "text"),
                                           ("rgb", "rgb")])
def test_outputs_are_zero_for_batch_mates_without_them(kind, key):
    a = full({"kind": kind}, name="A")
    b = full(name="B")
    bank = LevelBank.from_levels([Level.from_ascii(OPEN5, (1, 1), 0)])
    obs = GridEngine([a, b], num_envs=2, banks=[bank, bank]).reset()
    assert obs[key][0].any() and not obs[key][1].any()


@pytest.mark.parametrize("kind", ["line_of_sight", "random_mask", "symbol_noise"])
def test_filters_are_neutral_for_batch_mates_without_them(kind):
    rows = with_cell(LOS_ROOM, 1, 2, "~")
    params = {"kind": kind}
    if kind != "line_of_sight":
        params["fraction" if kind == "random_mask" else "prob"] = 0.5
    a = ego(5, params, name="A")
    b = ego(5, name="B")
    bank = LevelBank.from_levels([Level.from_ascii(rows, (5, 3), 3)])
    img = GridEngine([a, b], num_envs=8, banks=[bank, bank]).reset()["image"]
    plain = image(make_engine(b, rows, agent=(5, 3), direction=3))[0]
    assert all(torch.equal(img[i], plain) for i in range(1, 8, 2))
    assert not all(torch.equal(img[i], plain) for i in range(0, 8, 2))


# ============================================================================ contracts
ALL_EXTRAS = [
    {"kind": "line_of_sight"},
    {"kind": "random_mask", "fraction": 0.2},
    {"kind": "symbol_noise", "prob": 0.1},
    {"kind": "permuted_symbols"},
    {"kind": "agent_features"},
    {"kind": "text"},
    {"kind": "rgb", "tile": 3},
]
TESTED = {"full_grid", "egocentric", *(e["kind"] for e in ALL_EXTRAS)}


@pytest.mark.parametrize("comp", components_of("observation"), ids=lambda c: c.name)
def test_every_observation_component_is_tested_and_documented(comp):
    assert comp.name in TESTED, f"add a semantics test for observation component {comp.name!r}"
    assert len(comp.doc()) > 40
    for name, field in comp.Params.model_fields.items():
        assert name == "kind" or field.description


def _check_spec(eng: GridEngine, obs: dict[str, torch.Tensor]) -> None:
    spec = eng.observation_spec()
    assert set(spec) == set(obs)
    for key, (shape, dtype, low, high) in spec.items():
        assert tuple(obs[key].shape) == (eng.num_envs, *shape), key
        assert obs[key].dtype == dtype, key
        assert float(obs[key].min()) >= low and float(obs[key].max()) <= high, key


def test_observation_spec_matches_the_tensors():
    eng = make_engine(ego(5, *ALL_EXTRAS), ROOM7, agent=(3, 3), num_envs=3)
    obs = eng.observe(eng.state)
    assert set(obs) == {"image", "features", "text", "rgb"}
    _check_spec(eng, obs)
    obs, *_ = act(eng, 0, 1)
    _check_spec(eng, obs)
    # a mixed batch: egocentric 5 with every extra next to a full 7x7 grid
    a = ego(5, *ALL_EXTRAS, name="A")
    b = make_spec(name="B", height=7, width=7)
    bank = LevelBank.from_levels([Level.from_ascii(ROOM7, (3, 3), 0)])
    mixed = GridEngine([a, b], num_envs=4, banks=[bank, bank])
    obs = mixed.reset()
    _check_spec(mixed, obs)
    assert obs["rgb"].shape == (4, 21, 21, 3)


def test_same_seed_same_noisy_observations():
    spec = ego(7, {"kind": "random_mask", "fraction": 0.3}, {"kind": "symbol_noise", "prob": 0.2})
    acts = torch.randint(0, 4, (10, 8), generator=torch.Generator().manual_seed(0))

    def run(seed: int) -> torch.Tensor:
        eng = make_engine(spec, ROOM7, agent=(3, 3), num_envs=8, seed=seed)
        out = [eng.reset()["image"]]
        out += [eng.step(a)[0]["image"] for a in acts]
        return torch.stack(out)

    first = run(5)
    assert torch.equal(first, run(5))
    assert not torch.equal(first, run(6))
    assert int(first.max()) < NUM_SYMBOLS
