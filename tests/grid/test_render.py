"""Rendering: ASCII text and RGB images of envs and levels, PNG output."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from autoworld.envs.grid.engine import GridEngine
from autoworld.envs.grid.level import Level, LevelBank
from autoworld.envs.grid.render import (
    render_ascii,
    render_level_ascii,
    render_rgb,
    save_png,
    world_symbols,
)
from autoworld.envs.grid.symbols import Cell
from autoworld.envs.grid.tiles import tile_atlas
from autoworld.errors import EngineError
from tests.conftest import act, make_engine, make_spec

ROOM = ["#####", "#k..#", "#...#", "#..G#", "#####"]
TURN = {"transition": [{"kind": "turn_forward"}, {"kind": "keys_doors"}]}


def test_ascii_shows_level_and_agent_arrow_where_it_stands():
    eng = make_engine(make_spec(**TURN), ROOM, agent=(2, 2), direction=3)
    assert render_ascii(eng) == "#####\n#k..#\n#.^.#\n#..G#\n#####"
    act(eng, 1)  # turn right -> east
    act(eng, 2)  # forward -> (2, 3)
    assert render_ascii(eng).splitlines()[2] == "#..>#"
    act(eng, 1, 2)  # south, forward onto the goal: the episode ends and the env resets
    assert render_ascii(eng).splitlines()[2] == "#.^.#"


def test_each_env_is_cropped_to_its_own_world_in_a_mixed_batch():
    small = make_spec(name="Small")
    big = make_spec(name="Big", height=7, width=7)
    levels = [Level.from_ascii(ROOM, (1, 2), 1),
              Level.from_ascii(["#######"] + ["#.....#"] * 5 + ["#######"], (5, 5), 2)]
    eng = GridEngine([small, big], num_envs=2,
                     banks=[LevelBank.from_levels([lv]) for lv in levels])
    eng.reset()
    assert render_ascii(eng, 0) == "#####\n#kv.#\n#...#\n#..G#\n#####"
    rows = render_ascii(eng, 1).splitlines()
    assert len(rows) == 7 and all(len(r) == 7 for r in rows) and rows[5] == "#....<#"
    assert render_rgb(eng, 0, tile=4).shape == (20, 20, 3)
    assert render_rgb(eng, 1, tile=4).shape == (28, 28, 3)
    with pytest.raises(EngineError):
        render_ascii(eng, 2)


def test_rgb_draws_the_atlas_tiles_and_the_agent_arrow():
    eng = make_engine(make_spec(**TURN), ROOM, agent=(2, 2), direction=0)
    tile = 8
    img = render_rgb(eng, tile=tile)
    assert img.dtype == np.uint8 and img.shape == (5 * tile, 5 * tile, 3)
    atlas = tile_atlas(tile)

    def cell(r: int, c: int) -> np.ndarray:
        return img[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile]

    assert np.array_equal(cell(2, 2), atlas[Cell.AGENT_E])
    assert np.array_equal(cell(3, 3), atlas[Cell.GOAL])
    assert np.array_equal(cell(1, 1), atlas[Cell.KEY])
    assert np.array_equal(cell(0, 0), atlas[Cell.WALL])


def test_render_of_another_state_and_wrong_argument():
    eng = make_engine(make_spec(**TURN), ROOM, agent=(2, 2), direction=0)
    before = eng.state.clone()
    act(eng, 2)  # forward east
    assert render_ascii(eng, state=before).splitlines()[2] == "#.>.#"
    assert render_ascii(eng).splitlines()[2] == "#..>#"
    assert world_symbols(eng, state=before)[2, 2] == Cell.AGENT_E
    with pytest.raises(EngineError):
        render_ascii(eng.state)  # type: ignore[arg-type]


def test_level_ascii_draws_the_agent_at_its_start():
    level = Level.from_ascii(ROOM, (3, 1), 1)
    assert render_level_ascii(level) == "#####\n#k..#\n#...#\n#v.G#\n#####"
    assert level.grid[3, 1] == Cell.EMPTY  # the level itself is untouched


def test_save_png_writes_a_readable_image_atomically(tmp_path):
    eng = make_engine(make_spec(**TURN), ROOM, agent=(2, 2), direction=0)
    img = render_rgb(eng, tile=6)
    path = save_png(img, tmp_path / "out" / "frame.png")
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert np.array_equal(np.asarray(im.convert("RGB")), img)
    assert [p.name for p in path.parent.iterdir()] == ["frame.png"]  # no temp file left
    with pytest.raises(EngineError):
        save_png(img.astype(np.float32), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
