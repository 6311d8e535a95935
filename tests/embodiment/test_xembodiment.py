"""Cross-embodiment policies: zero-shot shapes, BC learning, checkpoints, bad inputs."""

from __future__ import annotations

import itertools

import pytest
import torch

from autoworld.envs.arm.embodiment import standard_embodiments
from autoworld.learners.arm_bc import ArmBCConfig, ArmBCError, build_chunks, make_policy, train_bc
from autoworld.learners.xembodiment import (
    PolicyShapeError,
    XPolicy,
    XPolicyConfig,
    load_xpolicy,
    save_xpolicy,
)
from tests.embodiment.synthetic import pure_rate_demos, spatial_demos

ARCHS = ("mlp", "transformer")
HEADS = ("mse", "mdn")


def arm_obs(name: str, batch: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random observation of a standard embodiment (padded to N_MAX)."""
    arm = standard_embodiments()[name]
    g = torch.Generator().manual_seed(seed)
    mask = arm.joint_mask()
    return {"joint_state": torch.randn(batch, 7, 3, generator=g) * mask[:, None],
            "joint_desc": arm.joint_desc().expand(batch, -1, -1).clone(),
            "joint_mask": mask.expand(batch, -1).clone(),
            "ee": torch.randn(batch, 3, generator=g), "task": torch.randn(batch, 16, generator=g)}


def small(arch: str, head: str, per_head: bool = False, chunk: int = 4) -> XPolicyConfig:
    return XPolicyConfig(arch=arch, head=head, chunk=chunk, hidden=32, layers=1, embed_dim=16,
                         per_embodiment_heads=per_head,
                         embodiments=("arm3", "arm7") if per_head else ())


@pytest.mark.parametrize("arch,head,per_head", list(itertools.product(ARCHS, HEADS,
                                                                      (False, True))))
def test_held_out_arm5_runs_zero_shot(arch, head, per_head):
    policy = make_policy(small(arch, head, per_head), seed=0)
    # trained on arm3 and arm7 ...
    for name in ("arm3", "arm7"):
        loss = policy.loss(arm_obs(name), torch.zeros(6, 4, 3))
        assert torch.isfinite(loss)
        loss.backward()
    # ... runs on the held-out arm5: an embedding from its joint descriptions, no id
    obs = arm_obs("arm5")
    chunk = policy.act(obs)
    assert chunk.shape == (6, 4, 3)
    assert bool(torch.isfinite(chunk).all()) and float(chunk.abs().max()) <= 1.0
    if per_head:  # routed to the shared head; the training arms to their own
        assert policy.head_index(obs).tolist() == [2] * 6
        assert policy.head_index(arm_obs("arm7")).tolist() == [1] * 6


@pytest.mark.parametrize("arch", ARCHS)
def test_padded_joints_do_not_matter(arch):
    """Values in padded joint slots must not change the output (masking works)."""
    policy = make_policy(small(arch, "mse"), seed=1)
    obs = arm_obs("arm5")
    noisy = {k: v.clone() for k, v in obs.items()}
    noisy["joint_state"][:, 5:] = 7.0
    noisy["joint_desc"][:, 5:] = -3.0
    assert torch.allclose(policy.act(obs), policy.act(noisy), atol=1e-5)


@pytest.mark.parametrize("arch,head", list(itertools.product(ARCHS, HEADS)))
def test_bc_lowers_loss(arch, head):
    d = pure_rate_demos(episodes=12)
    data = build_chunks(d, 4, "none", stride=2)
    policy = make_policy(small(arch, head), seed=0)
    losses = train_bc(policy, data, ArmBCConfig(steps=120, batch_size=64, learning_rate=3e-3))
    assert losses[-1] < losses[0] - 0.05 * abs(losses[0])


def test_mdn_keeps_both_modes_where_mse_averages():
    """On left/right data, sampled MDN chunks go left or right; the MSE chunk averages them."""
    d = spatial_demos(episodes=20, noise=0.0)  # the side is not predictable from the start
    data = build_chunks(d, 4, "none", stride=10_000)  # the first chunks: one observation
    start = data.start == 0
    assert int(start.sum()) == 20
    out = {}
    for head in HEADS:
        policy = make_policy(small("mlp", head), seed=0)
        train_bc(policy, data, ArmBCConfig(steps=300, batch_size=20, learning_rate=3e-3))
        gen = torch.Generator().manual_seed(0)
        out[head] = policy.act(data.obs, generator=gen)[:, :, 0].sum(1)  # lateral motion
    target = data.chunks[start, :, 0].sum(1).abs().mean()
    assert float(out["mse"].abs().mean()) < 0.5 * float(target)
    assert float(out["mdn"].abs().mean()) > 0.5 * float(target)
    assert bool((out["mdn"] > 0).any()) and bool((out["mdn"] < 0).any())


@pytest.mark.parametrize("arch,head,per_head", [("mlp", "mdn", True), ("transformer", "mse",
                                                                         False)])
def test_save_load_round_trip(tmp_path, arch, head, per_head):
    policy = make_policy(small(arch, head, per_head), seed=3)
    save_xpolicy(policy, tmp_path / "p", extra={"method": "arm-bc"})
    assert (tmp_path / "p.safetensors").is_file() and (tmp_path / "p.json").is_file()
    loaded, meta = load_xpolicy(tmp_path / "p.json")
    assert meta["method"] == "arm-bc" and loaded.config == policy.config
    obs = arm_obs("arm3")
    assert torch.equal(policy(obs), loaded(obs))


def test_bad_shapes_are_typed_errors():
    policy = XPolicy(small("mlp", "mse"))
    obs = arm_obs("arm3")
    obs["task"] = torch.zeros(6, 12)
    with pytest.raises(PolicyShapeError, match="task"):
        policy.act(obs)
    with pytest.raises(PolicyShapeError, match="lacks"):
        policy.act({"ee": torch.zeros(2, 3)})
    with pytest.raises(PolicyShapeError, match="chunk"):
        policy.loss(arm_obs("arm3"), torch.zeros(6, 5, 3))
    with pytest.raises(PolicyShapeError, match="attn_heads"):
        XPolicy(XPolicyConfig(arch="transformer", embed_dim=18, attn_heads=4))
    data = build_chunks(pure_rate_demos(episodes=3), 6, "none")
    with pytest.raises(ArmBCError, match="chunk=4"):
        train_bc(policy, data, ArmBCConfig(steps=1))
    with pytest.raises(ArmBCError, match="embodiments"):
        make_policy(XPolicyConfig(per_embodiment_heads=True, embodiments=("arm99",)))


@pytest.mark.parametrize("arch,head", list(itertools.product(ARCHS, HEADS)))
def test_rolls_out_in_the_arm_engine_on_held_out_arm5(arch, head):
    """Trained on arm3 observations, the policy drives arm5 in the real engine (mixed batch
    with arm3) without shape errors; the engine reports a success flag per env."""
    from autoworld.envs.arm.spec import arm_world
    from autoworld.learners.arm_bc import rollout_success

    policy = make_policy(small(arch, head, per_head=True), seed=0)
    worlds = [arm_world("reach", "arm5", max_steps=12), arm_world("reach", "arm3", max_steps=12)]
    res = rollout_success(policy, worlds, 4, seed=0, replan=2)
    assert res.episodes == 4 and len(res.per_world) == 2
    assert res.env_steps == 4 * 12 and 0.0 <= res.success <= 1.0
