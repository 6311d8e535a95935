"""Property-based tests: random valid specs build and run; invalid ones raise a typed error."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoworld.envs.grid.components.registry import REGISTRY, components_of
from autoworld.envs.grid.engine import GridEngine
from autoworld.envs.grid.layouts import draw_candidate
from autoworld.envs.grid.layouts_spec import LAYOUT_KINDS
from autoworld.envs.grid.level import LevelBank
from autoworld.envs.grid.levels import bank
from autoworld.errors import LevelError, SpecError
from autoworld.spec import parse_spec, spec_from_yaml, spec_to_yaml

MOVES = ("turn_forward", "cardinal")
VIEWS = ("full_grid", "egocentric")
# Components whose defaults are the only params we draw (structured list params).
FIXED_PARAMS = {"permuted_controls", "permuted_symbols"}
# Components that need a particular layout to make sense are still valid anywhere; a world
# without their objects simply never triggers them.


def _draw_params(draw, cls) -> dict:
    params: dict = {"kind": cls.name}
    if cls.name in FIXED_PARAMS:
        return params
    for name, f in cls.Params.model_fields.items():
        if name == "kind":
            continue
        lo = hi = None
        for m in f.metadata:
            lo = getattr(m, "ge", lo) if getattr(m, "ge", None) is not None else lo
            lo = getattr(m, "gt", lo) if getattr(m, "gt", None) is not None else lo
            hi = getattr(m, "le", hi) if getattr(m, "le", None) is not None else hi
            hi = getattr(m, "lt", hi) if getattr(m, "lt", None) is not None else hi
        ann = f.annotation
        if ann is bool:
            params[name] = draw(st.booleans())
        elif ann is int and lo is not None and hi is not None:
            value = draw(st.integers(int(math.ceil(lo)), int(hi)))
            if name == "size":  # egocentric sizes are odd
                value = value | 1
                value = min(value, int(hi) if int(hi) % 2 else int(hi) - 1)
            params[name] = value
        elif ann is float and lo is not None and hi is not None:
            params[name] = draw(st.floats(float(lo), float(hi), allow_nan=False))
            if any(getattr(m, "gt", None) is not None for m in f.metadata):
                params[name] = max(params[name], float(lo) + 1e-3)
    return params


@st.composite
def valid_specs(draw):
    size_h = draw(st.integers(7, 12))
    size_w = draw(st.integers(7, 12))
    move = draw(st.sampled_from(MOVES))
    others = [c for c in components_of("transition") if c.name not in MOVES]
    picked = draw(st.lists(st.sampled_from(others), max_size=10, unique=True))
    transition = [{"kind": move}] + [_draw_params(draw, c) for c in picked]
    view = draw(st.sampled_from(VIEWS))
    obs_others = [c for c in components_of("observation") if c.name not in VIEWS]
    observation = [_draw_params(draw, REGISTRY[view])]
    for c in obs_others:
        if c.name == "line_of_sight" and view != "egocentric":
            continue
        if draw(st.booleans()):
            observation.append(_draw_params(draw, c))
    rewards = components_of("reward")
    chosen = [c for c in rewards if draw(st.booleans())] or [REGISTRY["reach_goal"]]
    reward = [_draw_params(draw, c) for c in chosen]
    timed = [r for r in reward if "time_decay" in r]
    for r in timed[1:]:  # the timed rewards of a world share one time decay
        r["time_decay"] = timed[0]["time_decay"]
    layout = draw(st.sampled_from([k for k in LAYOUT_KINDS if k not in ("sokoban", "doorkey")]))
    return {
        "name": "Prop",
        "height": size_h,
        "width": size_w,
        "max_steps": draw(st.integers(5, 60)),
        "layout": {"kind": layout},
        "objects": {"coins": draw(st.integers(0, 3))},
        "transition": transition,
        "observation": observation,
        "reward": reward,
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs(), st.integers(0, 2**31 - 1))
def test_random_valid_specs_build_and_run(data, seed):
    spec = parse_spec(data)
    assert spec_from_yaml(spec_to_yaml(spec)) == spec
    assert json.loads(spec.canonical_json())["name"] == "Prop"
    # The engine must run on any level the layout draws, solvable or not; bank() itself either
    # finds solvable levels or says why not with a typed error.
    try:
        levels = bank(spec, "train", size=4)
    except LevelError as exc:
        assert "level" in str(exc)
        levels = LevelBank.from_levels([draw_candidate(spec, seed + i) for i in range(4)])
    eng = GridEngine(spec, num_envs=8, seed=seed, banks=[levels])
    obs = eng.reset()
    shapes = eng.observation_spec()
    g = torch.Generator().manual_seed(seed)
    for _ in range(12):
        obs, r, term, trunc, _ = eng.step(torch.randint(0, 7, (8,), generator=g))
        assert torch.isfinite(r).all()
        assert not (term & trunc).any()
        for key, (shape, dtype, lo, hi) in shapes.items():
            assert tuple(obs[key].shape) == (8, *shape) and obs[key].dtype == dtype
            assert bool((obs[key] >= lo).all()) and bool((obs[key] <= hi).all())
        rows = eng.state.pos // eng.W
        cols = eng.state.pos % eng.W
        assert bool(((rows < eng.height) & (cols < eng.width)).all())


BAD_FIELDS = [
    ("height", 4), ("height", 33), ("width", "wide"), ("max_steps", 0), ("max_steps", 10**9),
    ("name", "bad name!"), ("layout", {"kind": "volcano"}), ("objects", {"coins": 10**6}),
    ("transition", []), ("transition", [{"kind": "__import__('os')"}]),
    ("reward", [{"kind": "reach_goal", "reward": float("inf")}]),
    ("observation", [{"kind": "egocentric", "size": 99}]),
    ("observation", [{"kind": "egocentric", "size": 6}]),  # even: no middle column
    ("surprise", 1),
]


def test_timed_rewards_must_share_one_time_decay():
    data = {"name": "Bad", "transition": [{"kind": "cardinal"}],
            "observation": [{"kind": "full_grid"}],
            "reward": [{"kind": "reach_goal", "time_decay": 0.9},
                       {"kind": "inverted_goal", "time_decay": 0.0}]}
    with pytest.raises(SpecError, match="inverted_goal.time_decay=0.0 and "
                                        "reach_goal.time_decay=0.9 differ"):
        parse_spec(data)
    data["reward"][1]["time_decay"] = 0.9
    assert parse_spec(data).component("inverted_goal").time_decay == 0.9


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_invalid_specs_raise_typed_error_naming_the_field(field, value):
    data = {
        "name": "Bad", "transition": [{"kind": "cardinal"}],
        "observation": [{"kind": "full_grid"}], "reward": [{"kind": "reach_goal"}],
    }
    data[field] = value
    with pytest.raises(SpecError) as err:
        parse_spec(data)
    assert str(err.value).startswith(field)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4))
def test_arbitrary_mappings_never_crash_untyped(data):
    with pytest.raises(SpecError):
        parse_spec(data)


def test_syntax_errors_say_where_and_every_problem_is_named(tmp_path):
    from autoworld.spec import load_spec

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad\nheight: 8\n  width: 8\n")
    with pytest.raises(SpecError, match="not valid YAML: .* at line 3, column 8"):
        load_spec(bad)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"name": "Bad",}')
    with pytest.raises(SpecError, match="not valid JSON: .* at line 1, column 16"):
        load_spec(bad_json)
    data = {"name": "Bad", "height": 3, "width": 99, "max_steps": 0,
            "transition": [{"kind": "cardinal"}], "observation": [{"kind": "full_grid"}],
            "reward": [{"kind": "reach_goal"}]}
    with pytest.raises(SpecError) as err:
        parse_spec(data)
    text = str(err.value)
    assert text.startswith("height: ") and "; also width: " in text and "max_steps: " in text
