"""Shared test helpers: tiny hand-made worlds and engines."""

from __future__ import annotations

import pytest
import torch

from autoworld.envs.grid.engine import GridEngine
from autoworld.envs.grid.level import Level, LevelBank
from autoworld.spec import parse_spec


def make_spec(**fields):
    """A valid grid spec dict with defaults (cardinal moves, full view, reach goal)."""
    data = {
        "name": "Test",
        "height": 5,
        "width": 5,
        "max_steps": 50,
        "transition": [{"kind": "cardinal"}],
        "observation": [{"kind": "full_grid"}],
        "reward": [{"kind": "reach_goal", "time_decay": 0.0}],
    }
    data.update(fields)
    return parse_spec(data)


def make_engine(spec, rows: list[str], agent=(1, 1), direction: int = 0, num_envs: int = 1,
                seed: int = 0, **kw) -> GridEngine:
    """An engine whose only level is the ASCII ``rows`` (see symbols.CHARS), already reset."""
    if isinstance(spec, dict):
        spec = make_spec(**spec)
    level = Level.from_ascii(rows, agent, direction)
    eng = GridEngine(spec, num_envs=num_envs, seed=seed, banks=[LevelBank.from_levels([level])],
                     **kw)
    eng.reset()
    return eng


def act(eng: GridEngine, *actions: int):
    """Step every env of ``eng`` with the same actions in turn; returns the last step's result."""
    out = None
    for a in actions:
        out = eng.step(torch.full((eng.num_envs,), a, dtype=torch.long))
    return out


@pytest.fixture(autouse=True, scope="session")
def _oracle_cache_in_tmp(tmp_path_factory):
    """The oracle's disk cache (``learners.oracle_cache``) of the whole test session lives in a
    temporary folder, never the user's; subprocesses of the tests inherit it."""
    import os

    before = os.environ.get("AUTOWORLD_CACHE_DIR")
    os.environ["AUTOWORLD_CACHE_DIR"] = str(tmp_path_factory.mktemp("autoworld-cache"))
    yield
    if before is None:
        os.environ.pop("AUTOWORLD_CACHE_DIR", None)
    else:
        os.environ["AUTOWORLD_CACHE_DIR"] = before


@pytest.fixture
def engine_factory():
    return make_engine


@pytest.fixture
def one_thread():
    """One torch thread for the test: small networks are fastest single-threaded, results are
    reproducible, and two threads on a 2-core machine shared with other processes only wait for
    each other. Folders of such tests use it from an autouse fixture in their conftest."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
