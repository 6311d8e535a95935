"""Action-rate debiasing: rates, lengths, resampling, and the two properties of issue 6."""

from __future__ import annotations

import pytest
import torch

from autoworld.learners.arm_bc import build_chunks
from autoworld.learners.debias import (
    DebiasError,
    RateModelConfig,
    action_rate,
    chunk_lengths,
    chunk_rate,
    fit_rate_model,
    future_rate,
    length_range,
    match_lengths,
    resample_chunks,
)
from tests.embodiment.synthetic import pure_rate_demos, spatial_demos

T = 8
FAST_RATE = RateModelConfig(hidden=32, steps=150, batch_size=256, learning_rate=5e-3)


def per_obs_rate_variance(chunks) -> float:
    """Mean over observation bins (end-effector x in 0.1-wide bins) of the variance of chunk
    rates: how ambiguous the rate is for one observation."""
    rate = chunk_rate(chunks.chunks)
    x = chunks.obs["ee"][:, 0]
    bins = ((x + 1.0) / 0.1).floor().long()
    out = [rate[bins == b].var() for b in bins.unique() if int((bins == b).sum()) > 3]
    return float(torch.stack(out).mean())


def test_length_range_and_rate():
    assert length_range(8) == (4, 12)
    assert length_range(1) == (1, 1)
    a = torch.tensor([[3.0, 4.0, 1.0], [0.0, 0.0, -1.0]])
    assert torch.allclose(action_rate(a), torch.tensor([5.0, 0.0]))


def test_resample_identity_and_path_preserved():
    d = pure_rate_demos(episodes=6)
    e, t = d.valid.nonzero(as_tuple=True)
    same = resample_chunks(d.ee_action, d.valid, e, t, torch.full_like(e, T), T)
    # L = T: the chunk is the raw actions (zero past the end of the episode)
    raw = torch.zeros_like(same)
    padded = torch.cat([d.ee_action * d.valid[..., None], torch.zeros(6, 2 * T, 3)], 1)
    for j in range(T):
        raw[:, j] = padded[e, t + j]
    assert torch.allclose(same[..., :2], raw[..., :2], atol=1e-5)
    # L = 1.5T: the chunk covers the path of 12 raw steps in 8 steps (same displacement)
    L = torch.full_like(e, 12)
    long = resample_chunks(d.ee_action, d.valid, e, t, L, T)
    disp = torch.stack([padded[e, t + j, :2] for j in range(12)], 1).sum(1)
    assert torch.allclose(long[..., :2].sum(1), disp, atol=1e-4)


def test_future_rate_is_window_mean():
    d = pure_rate_demos(episodes=3)
    fr = future_rate(d.ee_action, d.valid, T)
    r = action_rate(d.ee_action)
    assert torch.allclose(fr[0, 0], r[0, :T].mean())
    n = int(d.length[1])
    assert torch.allclose(fr[1, n - 2], r[1, n - 2:n].mean())
    assert float(fr[1, n:].abs().sum()) == 0.0


def test_match_lengths_hits_target():
    d = pure_rate_demos(episodes=9, speeds=(0.6, 1.0, 1.6))
    target = torch.full(d.valid.shape, 0.45)
    L = match_lengths(d.ee_action, d.valid, T, target)
    lo, hi = length_range(T)
    assert int(L.min()) >= lo and int(L.max()) <= hi
    # early steps (far from the end): slow operators get long chunks, fast ones short chunks
    assert int(L[0, 0]) > T and int(L[2, 0]) < T and abs(int(L[1, 0]) - T) <= 1


def test_debias_reduces_rate_variance_on_pure_rate_multimodality():
    d = pure_rate_demos(episodes=45)
    biased = build_chunks(d, T, "none", stride=2)
    debiased = build_chunks(d, T, "debias", stride=2, rate_config=FAST_RATE)
    v0, v1 = per_obs_rate_variance(biased), per_obs_rate_variance(debiased)
    assert v1 < 0.35 * v0, (v0, v1)
    # the debiased rates centre on the operators' average rate
    assert abs(float(chunk_rate(debiased.chunks).mean()) - float(
        chunk_rate(biased.chunks).mean())) < 0.1


def test_debias_keeps_left_right_split_on_spatial_multimodality():
    d = spatial_demos(episodes=30)
    split = {}
    for mode in ("none", "debias"):
        cs = build_chunks(d, T, mode, rate_config=FAST_RATE)
        # chunks that start before the obstacle: their lateral motion shows the side passed
        before = cs.obs["ee"][:, 1] < -0.15
        lateral = cs.chunks[before, :, 0].sum(1)
        side = d.side[cs.episode[before]]
        # every chunk moves to its episode's side, and the share of right-going chunks is kept
        assert bool(((lateral > 0) == (side > 0)).all()), mode
        split[mode] = float((lateral > 0).float().mean())
        if mode == "debias":  # one speed: debiasing barely changes the chunk lengths
            assert float((cs.length - T).abs().float().mean()) < 1.0
    assert split["none"] == pytest.approx(split["debias"], abs=1e-6)
    assert split["none"] == pytest.approx(0.5, abs=0.1)


def test_baselines():
    d = pure_rate_demos(episodes=12)
    none = chunk_lengths(d, T, "none")
    assert bool((none == T).all())
    ep = chunk_lengths(d, T, "episode")
    assert bool((ep == ep[:, :1]).all())  # one length per episode
    assert int(ep[0, 0]) > int(ep[2, 0])  # longer (slower) episodes get longer chunks
    uni = chunk_lengths(d, T, "uniform")
    cs_u = build_chunks(d, T, "uniform")
    cs_n = build_chunks(d, T, "none")
    assert per_obs_rate_variance(cs_u) < per_obs_rate_variance(cs_n)
    assert uni.shape == none.shape
    with pytest.raises(DebiasError, match="mode"):
        chunk_lengths(d, T, "fastest")  # type: ignore[arg-type]
    with pytest.raises(DebiasError, match="rate_model"):
        chunk_lengths(d, T, "debias")


def test_rate_model_learns_task_slow_phase():
    """A task-required slow phase (half the path at a low rate for every operator) is kept by
    the rate model, which the uniform baseline cannot do."""
    d = pure_rate_demos(episodes=24, speeds=(1.0,))
    slow = d.ee[..., 0] > 0.0  # right half of the path slowed down
    d.ee_action[..., :2] = torch.where(slow[..., None], d.ee_action[..., :2] * 0.3,
                                       d.ee_action[..., :2])
    model, losses = fit_rate_model(d, T, RateModelConfig(hidden=32, steps=300,
                                                         learning_rate=5e-3))
    assert losses[-1] < losses[0]
    e, t = d.valid.nonzero(as_tuple=True)
    from autoworld.learners.debias import demo_obs

    with torch.no_grad():
        pred = model(demo_obs(d, e, t))
    x = d.ee[e, t, 0]
    assert float(pred[x > 0.2].mean()) < 0.6 * float(pred[x < -0.2].mean())
