"""The oracle's disk cache for behaviour cloning: a stored entry gives exactly the freshly solved
plans and policies, without solving; damaged entries and changed code are solved again."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from autoworld.envs.catalogue import load_world
from autoworld.envs.grid import oracle
from autoworld.envs.grid.oracle_states import _StateIndex
from autoworld.learners import bc, oracle_cache


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOWORLD_CACHE_DIR", str(tmp_path))
    bc._PLAN_CACHE.clear()
    yield tmp_path / "oracle-plans"
    bc._PLAN_CACHE.clear()


def _no_solving(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("solved although the entry is on disk")

    monkeypatch.setattr(oracle, "solve_many", refuse)


def _same_demos(a: bc.Demonstrations, b: bc.Demonstrations) -> bool:
    return (torch.equal(a.actions, b.actions) and a.obs.keys() == b.obs.keys()
            and all(torch.equal(a.obs[k], b.obs[k]) for k in a.obs)
            and a.mean_return == b.mean_return and a.levels == b.levels)


@pytest.mark.parametrize("world", ["Empty-6x6", "FrozenLakeWith-90613d-6x6"])
def test_a_stored_entry_gives_the_same_demonstrations_without_solving(world, cache_dir,
                                                                      monkeypatch):
    """Deterministic worlds store plans, stochastic ones optimal policies (their state index
    rebuilt from its keys); both replay to the same demonstrations, bit for bit."""
    spec = load_world(world)
    fresh = bc.collect_demonstrations(spec, levels=8, seed=3)
    files = list(cache_dir.glob("*.npz"))
    assert len(files) == 1 and spec.content_hash[:24] in files[0].name
    found = bc.oracle_plans(spec, levels=8)
    assert bool(found.plans) != bool(found.policies)  # one kind per world
    bc._PLAN_CACHE.clear()  # a new process: only the disk is left
    _no_solving(monkeypatch)
    again = bc.collect_demonstrations(spec, levels=8, seed=3)
    assert _same_demos(fresh, again)


def test_a_damaged_entry_is_solved_again_and_rewritten(cache_dir, monkeypatch, caplog):
    spec = load_world("Empty-6x6")
    fresh = bc.collect_demonstrations(spec, levels=4)
    (path,) = cache_dir.glob("*.npz")
    path.write_bytes(path.read_bytes()[:40])  # truncated, as by a full disk
    bc._PLAN_CACHE.clear()
    with caplog.at_level(logging.WARNING, logger="autoworld.learners.oracle_cache"):
        again = bc.collect_demonstrations(spec, levels=4)
    assert "unreadable" in caplog.text
    assert _same_demos(fresh, again)
    bc._PLAN_CACHE.clear()
    _no_solving(monkeypatch)  # the rewritten entry reads back
    assert _same_demos(fresh, bc.collect_demonstrations(spec, levels=4))


def test_changed_oracle_code_or_a_disabled_cache_reads_nothing(cache_dir, monkeypatch):
    spec = load_world("Empty-6x6")
    bc.oracle_plans(spec, levels=4)
    before = oracle_cache.entry_path(spec.content_hash, "train", 4, bc.STATE_CAP)
    assert before is not None and before.is_file()
    oracle_cache.code_digest.cache_clear()
    monkeypatch.setattr(oracle_cache, "FORMAT", oracle_cache.FORMAT + 1)
    try:
        assert oracle_cache.entry_path(spec.content_hash, "train", 4, bc.STATE_CAP) != before
    finally:
        oracle_cache.code_digest.cache_clear()
    monkeypatch.setenv("AUTOWORLD_CACHE_DIR", "off")
    assert oracle_cache.cache_root() is None
    bc._PLAN_CACHE.clear()
    before.unlink()
    bc.oracle_plans(spec, levels=4)
    assert not list(cache_dir.glob("*.npz"))


@pytest.mark.parametrize("hashed", [True, False])
def test_a_state_index_rebuilt_from_its_keys_gives_the_same_ids(hashed):
    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, 4, size=(300, 6), dtype=np.uint8), axis=0)
    keys = keys[rng.permutation(len(keys))]
    index = _StateIndex(hashed)
    from autoworld.envs.grid.oracle_states import _row_hash

    for part in np.array_split(keys, 5):  # several blocks, as an enumeration adds them
        index.ids(part, _row_hash(part) if hashed else None)
    stored = index.keys()
    assert np.array_equal(stored, keys)
    rebuilt = _StateIndex.from_keys(stored, hashed)
    probe = np.concatenate([keys[::7], np.full((1, 6), 9, np.uint8)])
    assert np.array_equal(rebuilt.find(probe), index.find(probe))
    assert rebuilt.find(probe)[-1] == -1 and len(rebuilt) == len(keys)
