"""Invariants of every catalogue world: spec round trips, and random play never beats the oracle."""

from __future__ import annotations

import json

import pytest
import torch

from autoworld.envs import catalogue
from autoworld.envs.catalogue import list_worlds, load_world
from autoworld.envs.grid.engine import GridEngine
from autoworld.envs.grid.levels import bank
from autoworld.spec import parse_spec, spec_from_yaml, spec_to_yaml

WORLDS = list_worlds()
# Random play on every hand-written world and a deterministic quarter of the generated ones; the
# other generated worlds run in a slow-marked sweep.
_GEN = catalogue.generated_worlds()
PLAY = catalogue.handwritten_worlds() + _GEN[::4]
PLAY_SLOW = [n for n in _GEN if n not in PLAY]


def test_catalogue_has_the_benchmark_world_and_spans_the_taxonomy():
    from autoworld.taxonomy import tags

    assert "DoorKey-8x8" in WORLDS and len(WORLDS) >= 12
    classes = {v for w in WORLDS for v in tags(load_world(w)).values()}
    assert {"binary", "cumulative", "full", "partial", "aligned", "inverse", "deterministic",
            "stochastic"} <= classes


@pytest.mark.parametrize("name", WORLDS)
def test_spec_round_trips_exactly(name):
    spec = load_world(name)
    assert spec_from_yaml(spec_to_yaml(spec)) == spec
    again = parse_spec(json.loads(spec.model_dump_json()))
    assert again == spec and again.content_hash == spec.content_hash


@pytest.mark.parametrize("name", PLAY)
def test_random_play_stays_within_the_world_and_below_the_oracle(name):
    _random_play_check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", PLAY_SLOW)
def test_random_play_on_the_other_generated_worlds(name):
    _random_play_check(name)


def _random_play_check(name):
    spec = load_world(name)
    test_bank = bank(spec, "test")
    L = len(test_bank)
    per_level = 24 if GridEngine(spec, banks=[test_bank]).stochastic_components() else 6
    n = L * per_level
    eng = GridEngine(spec, num_envs=n, seed=7, banks=[test_bank], final_obs=False)
    eng.reset(level_ids=torch.arange(n) % L)
    level_of_env = torch.arange(n) % L
    returns = torch.zeros(n)
    finished = torch.zeros(n, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    for _ in range(spec.max_steps):
        _, r, term, trunc, _ = eng.step(torch.randint(0, 7, (n,), generator=gen))
        assert torch.isfinite(r).all()
        assert not bool((term & trunc).any())
        returns += torch.where(finished, 0.0, r)
        finished |= term | trunc
        rows, cols = eng.state.pos // eng.W, eng.state.pos % eng.W
        assert bool(((rows < eng.height) & (cols < eng.width)).all())
    assert bool(finished.all())  # every first episode ended within max_steps
    optimal = torch.tensor(test_bank.info["optimal_return"], dtype=torch.float32)
    if not eng.stochastic_components():
        # deterministic: no episode may beat the exact optimum (or the certified bound)
        assert bool((returns <= optimal[level_of_env] + 1e-4).all()), (returns, optimal)
    else:
        # stochastic: the oracle's value is the optimal *expected* return; a lucky episode may
        # exceed it, the mean over episodes may not (beyond sampling error)
        per_level = returns.view(per_level, L)
        mean = per_level.mean(0)
        stderr = per_level.std(0) / per_level.shape[0] ** 0.5
        assert bool((mean <= optimal + 3 * stderr + 1e-4).all()), (mean, optimal)


# ======================================================================== generated worlds
GENERATED = _GEN


def test_generated_catalogue_has_36_worlds_and_spans_the_taxonomy():
    from collections import Counter

    from autoworld.taxonomy import ALL_TAGS, tag_list

    assert len(GENERATED) >= 36
    assert set(GENERATED) <= set(WORLDS) and set(catalogue.handwritten_worlds()) <= set(WORLDS)
    counts = Counter(t for name in GENERATED for t in tag_list(load_world(name)))
    assert all(counts[t] >= 8 for t in ALL_TAGS), counts


@pytest.mark.parametrize("name", GENERATED)
def test_generated_world_ships_exact_validated_levels(name):
    spec = load_world(name)
    assert catalogue.world_path(name).parent == catalogue.GENERATED_DIR
    data = json.loads(catalogue.levels_path(name).read_text())
    assert data["content_hash"] == spec.content_hash and data["name"] == name
    for split, n in (("test", 10), ("validation", 5)):
        entries = data["splits"][split]
        assert len(entries) == n
        assert all(e["optimal_exact"] for e in entries)
        assert all(e["optimal_return"] >= e["random_return"] + 0.05 for e in entries)
        b = bank(spec, split)  # served from the stored file, not regenerated
        assert b.info["source"] == "catalogue" and len(b) == n
        assert b.info["optimal_return"] == [e["optimal_return"] for e in entries]


def test_generated_worlds_are_listed_tagged_filtered_and_registered():
    import gymnasium
    from typer.testing import CliRunner

    from autoworld.cli.app import app
    from autoworld.registration import env_id
    from autoworld.taxonomy import tag_list

    rows = json.loads(CliRunner().invoke(app, ["list", "--json"]).stdout)
    by_name = {r["name"]: r for r in rows}
    assert set(GENERATED) <= set(by_name)
    name = GENERATED[0]
    assert by_name[name]["source"] == "generated"
    assert by_name["DoorKey-8x8"]["source"] == "hand-written"
    assert by_name[name]["tags"] == tag_list(load_world(name))
    assert by_name[name]["levels"] == {"test": 10, "validation": 5}
    stochastic = json.loads(CliRunner().invoke(app, ["list", "--json", "--tag", "stochastic",
                                                     "--tag", "inverse"]).stdout)
    assert stochastic and all({"stochastic", "inverse"} <= set(r["tags"]) for r in stochastic)
    assert {r["name"] for r in stochastic} == {
        r["name"] for r in rows if {"stochastic", "inverse"} <= set(r["tags"])}
    assert any(r["source"] == "generated" for r in stochastic)
    for n in GENERATED:
        assert gymnasium.spec(env_id(n)).kwargs == {"world": n}
