"""PPO and policy options: the loss against a hand computation, separate actor and critic
encoders, one-hot symbols, tanh, initialisation gains, old checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from autoworld.envs.catalogue import load_world
from autoworld.envs.grid.engine import GridEngine
from autoworld.envs.grid.levels import bank
from autoworld.learners.evaluation import evaluate
from autoworld.learners.policies import PolicyConfig, policy_from_spec
from autoworld.learners.ppo import PPO, PPOConfig, ppo_loss


def engine(name: str = "DoorKey-8x8", num_envs: int = 4) -> GridEngine:
    spec = load_world(name)
    return GridEngine(spec, num_envs=num_envs, banks=[bank(spec, "validation")])


# ============================================================================ loss
@pytest.mark.parametrize("clip_vloss", [False, True])
def test_ppo_loss_matches_hand_computation(clip_vloss: bool) -> None:
    cfg = PPOConfig(norm_adv=False, clip_vloss=clip_vloss, clip_coef=0.2, ent_coef=0.1,
                    vf_coef=0.5)
    # two samples, two actions
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])  # probs (1/4, 3/4), (1/2, 1/2)
    actions = torch.tensor([1, 0])
    old_logp = torch.log(torch.tensor([0.5, 0.5]))  # ratios 1.5 and 1.0
    adv = torch.tensor([2.0, -1.0])
    new_v = torch.tensor([1.0, 0.0])
    old_v = torch.tensor([0.5, 0.0])
    ret = torch.tensor([2.0, 1.0])
    out = ppo_loss(logits, actions, old_logp, adv, new_v, old_v, ret, cfg)

    # policy: sample 0 ratio 1.5 clipped to 1.2 (adv > 0: min(1.5*2, 1.2*2) = 2.4);
    # sample 1 ratio 1 (-1); loss = -mean(2.4, -1)
    pg = -(2.4 + -1.0) / 2
    h0 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    ent = (h0 + math.log(2.0)) / 2
    # clipped, V0 moves at most to 0.5 + 0.2 = 0.7: error max(1, 1.3^2); V1 unchanged: 1
    v = 0.5 * ((1.3 ** 2 if clip_vloss else 1.0) + 1.0) / 2
    assert out["policy_loss"].item() == pytest.approx(pg)
    assert out["entropy"].item() == pytest.approx(ent)
    assert out["value_loss"].item() == pytest.approx(v)
    assert out["loss"].item() == pytest.approx(pg - 0.1 * ent + 0.5 * v)
    assert out["clipfrac"].item() == pytest.approx(0.5)
    kl = ((1.5 - 1) - math.log(1.5)) / 2
    assert out["approx_kl"].item() == pytest.approx(kl)


def test_ppo_loss_normalizes_advantages() -> None:
    cfg = PPOConfig(norm_adv=True, ent_coef=0.0, vf_coef=0.0)
    logits = torch.zeros(3, 2)
    old_logp = torch.full((3,), math.log(0.5))
    zeros = torch.zeros(3)
    a = ppo_loss(logits, torch.zeros(3, dtype=torch.long), old_logp, torch.tensor([1., 2., 6.]),
                 zeros, zeros, zeros, cfg)
    b = ppo_loss(logits, torch.zeros(3, dtype=torch.long), old_logp,
                 torch.tensor([10., 20., 60.]), zeros, zeros, zeros, cfg)
    # ratio 1: the loss is minus the mean normalized advantage, 0 whatever the scale
    assert a["loss"].item() == pytest.approx(0.0, abs=1e-6)
    assert b["loss"].item() == pytest.approx(0.0, abs=1e-6)


# ============================================================================ network
def test_separate_critic_has_its_own_encoder() -> None:
    eng = engine()
    obs = eng.reset()
    shared = policy_from_spec(eng.observation_spec(), PolicyConfig(trunk="mlp"))
    sep = policy_from_spec(eng.observation_spec(), PolicyConfig(trunk="mlp", shared_trunk=False))
    assert shared.critic_encoder is None
    assert sep.critic_encoder is not None
    actor_params = set(map(id, sep.encoder.parameters()))
    assert not actor_params & set(map(id, sep.critic_encoder.parameters()))
    n_shared = sum(p.numel() for p in shared.parameters())
    n_enc = sum(p.numel() for p in shared.encoder.parameters())
    assert sum(p.numel() for p in sep.parameters()) == n_shared + n_enc

    # the value's gradient reaches only the critic's encoder, the logits' only the actor's
    logits, value, _ = sep(obs)
    value.sum().backward()
    assert all(p.grad is None for p in sep.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in sep.critic_encoder.parameters())
    sep.zero_grad(set_to_none=True)
    logits, value, _ = sep(obs)
    logits.sum().backward()
    assert all(p.grad is None for p in sep.critic_encoder.parameters())


def test_separate_critic_needs_a_feed_forward_policy() -> None:
    with pytest.raises(ValidationError, match="feed-forward"):
        PolicyConfig(recurrent=True, shared_trunk=False)


@pytest.mark.parametrize("trunk", ["mlp", "conv"])
def test_onehot_tanh_encoder(trunk: str) -> None:
    eng = engine()
    obs = eng.reset()
    cfg = PolicyConfig(trunk=trunk, encoding="onehot", activation="tanh", dense_layers=2,
                       channels=4, hidden=16)
    policy = policy_from_spec(eng.observation_spec(), cfg)
    assert policy.encoder.embed is None
    dense = [m for m in policy.encoder.dense if isinstance(m, torch.nn.Linear)]
    assert len(dense) == 2
    assert all(isinstance(m, torch.nn.Tanh) for m in policy.encoder.dense[1::2])
    h = policy.encode(obs)
    assert h.shape == (4, 16) and h.abs().max() < 1.0
    # the input is a one-hot over the symbol table: the first layer's fan-in says so
    r, c = eng.observation_spec()["image"][0]
    if trunk == "mlp":
        assert dense[0].in_features == policy.encoder.num_symbols * r * c + policy.features_dim
    else:
        assert policy.encoder.trunk[0].in_channels == policy.encoder.num_symbols
    # another symbol in one cell changes the encoding
    other = dict(obs)
    other["image"] = obs["image"].clone()
    other["image"][0, 0, 0] = (other["image"][0, 0, 0] + 1) % policy.encoder.num_symbols
    assert not torch.allclose(policy.encode(other)[0], h[0])


@pytest.mark.parametrize("name", ["DoorKey-8x8", "TorusCoverage-7x7"])  # the second has features
def test_onehot_lookup_equals_dense_onehot(name: str) -> None:
    """The MLP's one-hot input is read as an embedding-bag lookup: same values and gradients as
    the first layer applied to an explicit one-hot."""
    eng = engine(name)
    obs = eng.reset()
    policy = policy_from_spec(eng.observation_spec(), PolicyConfig(trunk="mlp", encoding="onehot"))
    enc = policy.encoder
    x = torch.nn.functional.one_hot(obs["image"].long(), enc.num_symbols).float().flatten(1)
    if enc.features_dim:
        x = torch.cat([x, obs["features"].float()], dim=1)
    fast, dense = enc(obs), enc.dense(x)
    torch.testing.assert_close(fast, dense)
    fast.square().sum().backward()
    grad = enc.dense[0].weight.grad.clone()
    enc.zero_grad()
    enc.dense(x).square().sum().backward()
    torch.testing.assert_close(grad, enc.dense[0].weight.grad)


@pytest.mark.parametrize("shared", [True, False])
def test_orthogonal_init_gains(shared: bool) -> None:
    eng = engine()
    cfg = PolicyConfig(trunk="mlp", encoding="onehot", activation="tanh", dense_layers=2,
                       shared_trunk=shared)
    policy = policy_from_spec(eng.observation_spec(), cfg)

    def gain(w: torch.Tensor) -> torch.Tensor:  # W W^T = g^2 I for a wide orthogonal W
        w = w.detach().reshape(w.shape[0], -1)
        assert w.shape[0] <= w.shape[1]
        return w @ w.T

    encoders = [policy.encoder] + ([] if shared else [policy.critic_encoder])
    for enc in encoders:
        for m in enc.dense:
            if isinstance(m, torch.nn.Linear):
                torch.testing.assert_close(gain(m.weight), 2.0 * torch.eye(m.out_features),
                                           atol=1e-4, rtol=0)
                assert m.bias.abs().max() == 0
    torch.testing.assert_close(gain(policy.actor.weight), 1e-4 * torch.eye(7), atol=1e-8,
                               rtol=0)
    torch.testing.assert_close(gain(policy.critic.weight), torch.ones(1, 1), atol=1e-5, rtol=0)


def test_policy_loads_state_saved_before_the_encoder_submodule() -> None:
    eng = engine()
    policy = policy_from_spec(eng.observation_spec(), PolicyConfig())
    old = {k.removeprefix("encoder."): v.clone() for k, v in policy.state_dict().items()}
    assert "embed.weight" in old and "dense.0.weight" in old
    fresh = policy_from_spec(eng.observation_spec(), PolicyConfig())
    torch.nn.init.zeros_(fresh.encoder.embed.weight)
    fresh.load_state_dict(old)
    obs = eng.reset()
    torch.testing.assert_close(fresh(obs)[0], policy(obs)[0])


def test_default_policy_init_is_unchanged_by_the_options() -> None:
    """The options add modules after the default ones, so a seeded default init is the same
    draw whether or not they exist (the first layers of a separate-critic policy match the
    shared one's)."""
    eng = engine()
    torch.manual_seed(3)
    a = policy_from_spec(eng.observation_spec(), PolicyConfig(trunk="mlp"))
    torch.manual_seed(3)
    b = policy_from_spec(eng.observation_spec(), PolicyConfig(trunk="mlp", shared_trunk=False))
    torch.testing.assert_close(a.encoder.dense[0].weight, b.encoder.dense[0].weight)


# ============================================================================ learner
def test_ppo_with_separate_tanh_critic_learns_empty_world() -> None:
    spec = load_world("Empty-6x6")
    cfg = PPOConfig(num_envs=64, num_steps=16, learning_rate=2.5e-3, anneal_lr=False,
                    clip_vloss=False,
                    policy=PolicyConfig(trunk="mlp", shared_trunk=False, activation="tanh",
                                        encoding="onehot", dense_layers=2, hidden=64))
    learner = PPO(spec, cfg, total_steps=64 * 16 * 30, seed=0)
    before = evaluate(learner.policy, spec, episodes_per_level=4, seed=1)
    for _ in range(30):
        learner.iterate()
    after = evaluate(learner.policy, spec, episodes_per_level=4, seed=1)
    assert after.normalized_gain > before.normalized_gain + 0.3, (before, after)
    # both encoders moved
    state = learner.state_dict()
    assert any(k.startswith("critic_encoder.") for k in state["policy"])
