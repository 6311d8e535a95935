"""Mutation: children differ from their parents, stay in bounds and mostly pass validation."""

from __future__ import annotations

import numpy as np
import pytest

from autoworld.envs.catalogue import load_world
from autoworld.generator.mutate import SIZE_RANGE, mutate
from autoworld.generator.procedural import sample_spec
from autoworld.spec import parse_spec
from autoworld.validation import validate

PARENTS = ["Empty-6x6", "SlipperyDeceptive-7x7", "Sokoban-7x7", "InverseLava-8x8"]


def test_same_rng_same_child():
    parent = load_world("Empty-6x6")
    assert mutate(parent, 3) == mutate(parent, 3)


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
def test_children_differ_and_stay_within_bounds(strength):
    rng = np.random.default_rng(1)
    for name in PARENTS:
        parent = load_world(name)
        for _ in range(5):
            child = mutate(parent, rng, strength)
            assert child.content_hash != parent.content_hash
            # re-parsing checks every schema bound; sizes stay oracle-friendly
            assert parse_spec(child.model_dump(mode="json")) == child
            assert SIZE_RANGE[0] <= child.height <= max(SIZE_RANGE[1], parent.height)
            assert child.name.startswith(name) and "-m" in child.name


def test_mutation_makes_component_level_edits():
    rng = np.random.default_rng(0)
    parent = load_world("Empty-6x6")
    kinds = {tuple(c.kind for f in ("transition", "observation", "reward")
                   for c in getattr(mutate(parent, rng, 1.0), f)) for _ in range(20)}
    assert len(kinds) > 3


def test_children_pass_validation_at_a_reported_rate(record_property):
    rng = np.random.default_rng(2)
    parents = [parse_spec(sample_spec(t, 0)) for t in ("ice", "coins", "lava", "maze")]
    parents += [load_world("Empty-6x6"), load_world("SlipperyDeceptive-7x7")]
    reports = [validate(mutate(p, rng, 0.5), num_levels=1, smoke_steps=8, num_envs=2,
                        random_episodes=16) for p in parents for _ in range(2)]
    rate = sum(r.ok for r in reports) / len(reports)
    record_property("mutation_pass_rate", rate)
    print(f"mutation children pass rate: {rate:.2%} of {len(reports)}")
    assert rate >= 0.75, [r.error for r in reports if not r.ok]


def test_child_names_strip_only_mutation_suffixes():
    from autoworld.generator.mutate import child_name

    assert child_name("Empty-6x6-m21868b-m0a0b0c", "ffffff99") == "Empty-6x6-mffffff"
    assert child_name("Lava-maze", "abcdef12") == "Lava-maze-mabcdef"  # was "Lava-mabcdef"
