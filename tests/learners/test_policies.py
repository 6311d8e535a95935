"""Policies: built for every catalogue world's observation spec; save/load round trip."""

from __future__ import annotations

import json

import pytest
import torch

from autoworld.envs.catalogue import list_worlds, load_world
from autoworld.envs.grid.engine import GridEngine
from autoworld.envs.grid.levels import bank
from autoworld.errors import EngineError
from autoworld.learners.checkpoint import load_policy, save_policy
from autoworld.learners.policies import (
    NUM_ACTIONS,
    PolicyConfig,
    policy_from_spec,
    sample_actions,
)


def small_engine(name: str, num_envs: int = 3) -> GridEngine:
    spec = load_world(name)  # the small stored validation bank keeps this fast
    return GridEngine(spec, num_envs=num_envs, banks=[bank(spec, "validation")])


@pytest.mark.parametrize("name", list_worlds())
@pytest.mark.parametrize("config", [PolicyConfig(), PolicyConfig(trunk="mlp", recurrent=True)],
                         ids=["conv", "mlp-gru"])
def test_policy_builds_for_every_world(name: str, config: PolicyConfig) -> None:
    eng = small_engine(name)
    policy = policy_from_spec(eng.observation_spec(), config)
    obs = eng.reset()
    state = policy.initial_state(3)
    logits, value, state = policy(obs, state)
    assert logits.shape == (3, NUM_ACTIONS) and value.shape == (3,)
    assert torch.isfinite(logits).all() and torch.isfinite(value).all()
    assert (state is None) == (not config.recurrent)
    obs, *_ = eng.step(sample_actions(logits))
    logits2, _, _ = policy(obs, state, torch.tensor([True, False, False]))
    assert logits2.shape == (3, NUM_ACTIONS)


def test_features_are_read_when_present() -> None:
    eng = small_engine("WindyCoins-9x9")
    assert "features" in eng.observation_spec()
    with_f = policy_from_spec(eng.observation_spec(), PolicyConfig(trunk="mlp"))
    without = policy_from_spec(eng.observation_spec(), PolicyConfig(trunk="mlp",
                                                                    use_features=False))
    assert with_f.features_dim == 8 and without.features_dim == 0


def test_pixel_policy() -> None:
    eng = small_engine("Empty-6x6")
    policy = policy_from_spec(eng.observation_spec(), PolicyConfig(pixels=True))
    logits, _, _ = policy(eng.reset())
    assert logits.shape == (3, NUM_ACTIONS)
    with pytest.raises(EngineError, match="rgb"):
        policy_from_spec(small_engine("DoorKey-8x8").observation_spec(),
                         PolicyConfig(pixels=True))


def test_recurrent_reset_zeroes_state() -> None:
    eng = small_engine("FoggyRooms-11x11", 2)
    policy = policy_from_spec(eng.observation_spec(), PolicyConfig(recurrent=True))
    obs = eng.reset()
    _, _, state = policy(obs)
    fresh, _, _ = policy(obs, policy.initial_state(2))
    reset, _, _ = policy(obs, state, torch.tensor([True, True]))
    assert torch.allclose(fresh, reset)


def test_sampling_is_seeded() -> None:
    logits = torch.randn(64, NUM_ACTIONS)
    a = sample_actions(logits, torch.Generator().manual_seed(3))
    b = sample_actions(logits, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(sample_actions(logits, greedy=True), logits.argmax(-1))


@pytest.mark.parametrize("config", [
    PolicyConfig(), PolicyConfig(trunk="mlp", recurrent=True),
    PolicyConfig(trunk="mlp", shared_trunk=False, encoding="onehot", activation="tanh",
                 dense_layers=2)])
def test_save_load_round_trip(tmp_path, config: PolicyConfig) -> None:
    spec = load_world("DoorKey-8x8")
    eng = small_engine("DoorKey-8x8")
    policy = policy_from_spec(eng.observation_spec(), config)
    path = save_policy(policy, tmp_path / "p", spec_hash=spec.content_hash, method="ppo",
                       world=spec.name)
    assert path.suffix == ".safetensors" and path.is_file()
    meta = json.loads((tmp_path / "p.json").read_text())
    assert meta["spec_hash"] == spec.content_hash and meta["method"] == "ppo"
    assert set(meta["versions"]) >= {"autoworld", "torch"}
    loaded, meta2 = load_policy(tmp_path / "p.safetensors")
    assert meta2 == meta and loaded.config == config
    for k, v in policy.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    obs = eng.reset()
    assert torch.equal(policy(obs)[0], loaded(obs)[0])
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind
