"""Action-rate debiasing of demonstration chunks (GO-1-Pro's recipe), and its baselines.

Demonstrators differ in speed: the same path is traversed fast by one operator and slowly by
another, so the chunk a policy must predict from one observation is ambiguous in its *rate* (the
norm of the end-effector delta, ``ee_action[..., :2]``). Debiasing removes that ambiguity:

1. An action-rate model ``r_hat(o)`` predicts the expected rate from the observation (regression
   on the demonstrations' mean rate over the next T steps; since the observation does not reveal
   the operator, it learns the average over operators, and keeps task-required slow phases).
2. Each training chunk starting at step t takes a length L in [0.5T, 1.5T] chosen so that, once
   its L steps are resampled to T (linear interpolation of the end-effector path in time), its
   rate matches ``r_hat(o_t)``: L = argmin |sum(rate[t:t+L]) / T - r_hat(o_t)|.

Baselines, by ``mode``: ``none`` (L = T); ``uniform`` (every chunk rescaled to the dataset's mean
rate, so task-required slow phases are lost too); ``episode`` (per-episode duration
normalization: L = T * episode length / mean length, the same for every chunk of an episode).

Every function works on demonstration tensors shaped like ``autoworld.envs.arm.demos.DemoSet``:
``ee_action`` (E, S, 3), ``valid`` (E, S) bool, ``length`` (E,).
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from autoworld.errors import AutoworldError
from autoworld.learners.xembodiment import flat_obs

log = logging.getLogger(__name__)

Mode = Literal["none", "uniform", "episode", "debias"]
MODES: tuple[str, ...] = ("none", "uniform", "episode", "debias")


class DebiasError(AutoworldError, ValueError):
    """Inconsistent inputs to chunk construction (unknown mode, missing rate model, shapes)."""


def action_rate(ee_action: torch.Tensor) -> torch.Tensor:
    """The end-effector action rate of each step: ``||ee_action[..., :2]||`` (...,)."""
    return ee_action[..., :2].float().norm(dim=-1)


def length_range(chunk: int) -> tuple[int, int]:
    """The allowed chunk lengths [ceil(0.5T), floor(1.5T)] (at least 1)."""
    return max(1, math.ceil(0.5 * chunk)), max(1, math.floor(1.5 * chunk))


def future_rate(ee_action: torch.Tensor, valid: torch.Tensor, chunk: int) -> torch.Tensor:
    """Mean rate over the valid steps of [t, t+T) for every (episode, t): the rate model's
    regression target (E, S); zero where step t is not valid."""
    rate = action_rate(ee_action) * valid.float()  # (E, S)
    E, S = rate.shape
    cs = F.pad(rate.cumsum(1), (1, chunk))
    cv = F.pad(valid.float().cumsum(1), (1, chunk))
    cs[:, S + 1:] = cs[:, S:S + 1]
    cv[:, S + 1:] = cv[:, S:S + 1]
    t = torch.arange(S)
    num = cs[:, t + chunk] - cs[:, t]
    den = (cv[:, t + chunk] - cv[:, t]).clamp_min(1.0)
    return torch.where(valid, num / den, torch.zeros_like(num))


# ====================================================================== the action-rate model
class RateModelConfig(BaseModel):
    """The action-rate model and its fit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hidden: int = Field(64, ge=8, le=2048, description="Width of the MLP's two hidden layers.")
    steps: int = Field(400, ge=1, description="Adam steps of the regression.")
    batch_size: int = Field(256, ge=1, description="Samples per step.")
    learning_rate: float = Field(3e-3, gt=0, description="Adam learning rate.")


class ActionRateModel(nn.Module):
    """Predicts the expected end-effector action rate (B,) >= 0 from an arm observation."""

    def __init__(self, in_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.softplus(self.net(flat_obs(obs))[:, 0])


def demo_obs(demos, e: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
    """The observation dict of steps (e, t) (both (N,) long) of a DemoSet-shaped object."""
    return {"joint_state": demos.joint_state[e, t], "joint_desc": demos.joint_desc[e],
            "joint_mask": demos.joint_mask[e], "ee": demos.ee[e, t], "task": demos.task[e, t]}


def valid_steps(demos) -> tuple[torch.Tensor, torch.Tensor]:
    """(e, t) indices (N,) of every valid step of the demonstrations."""
    e, t = demos.valid.nonzero(as_tuple=True)
    return e, t


def fit_rate_model(demos, chunk: int, config: RateModelConfig | None = None, seed: int = 0
                   ) -> tuple[ActionRateModel, list[float]]:
    """Fit an ``ActionRateModel`` to the mean rate of the next ``chunk`` steps; returns the
    model (eval mode) and the loss every 50 steps."""
    cfg = config or RateModelConfig()
    e, t = valid_steps(demos)
    if e.numel() == 0:
        raise DebiasError("the demonstrations have no valid step; collect finished episodes")
    target = future_rate(demos.ee_action, demos.valid, chunk)[e, t]
    probe = flat_obs(demo_obs(demos, e[:1], t[:1]))
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ActionRateModel(probe.shape[1], cfg.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    losses: list[float] = []
    n = e.numel()
    for step in range(cfg.steps):
        idx = torch.randint(n, (min(cfg.batch_size, n),), generator=gen)
        loss = F.mse_loss(model(demo_obs(demos, e[idx], t[idx])), target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            losses.append(float(loss.detach()))
    return model.eval(), losses


@torch.no_grad()
def predict_rates(model: ActionRateModel, demos, batch: int = 8192) -> torch.Tensor:
    """The model's rate at every step (E, S), zero at invalid steps."""
    out = torch.zeros(demos.valid.shape)
    e, t = valid_steps(demos)
    for i in range(0, e.numel(), batch):
        ei, ti = e[i:i + batch], t[i:i + batch]
        out[ei, ti] = model(demo_obs(demos, ei, ti)).float()
    return out


# ====================================================================== chunk lengths
def _padded_rate_cumsum(ee_action: torch.Tensor, valid: torch.Tensor, chunk: int) -> torch.Tensor:
    """Cumulative rate (E, S + 1 + 1.5T), flat past the episode's end (the arm stays put)."""
    rate = action_rate(ee_action) * valid.float()
    cs = F.pad(rate.cumsum(1), (1, length_range(chunk)[1] + 1))
    S = rate.shape[1]
    cs[:, S + 1:] = cs[:, S:S + 1]
    return cs


def match_lengths(ee_action: torch.Tensor, valid: torch.Tensor, chunk: int,
                  target: torch.Tensor) -> torch.Tensor:
    """Per (episode, t) the length L in [0.5T, 1.5T] whose resampled rate
    ``sum(rate[t:t+L]) / T`` is closest to ``target`` (E, S); returns (E, S) long (ties: the
    length nearest to T)."""
    lo, hi = length_range(chunk)
    cs = _padded_rate_cumsum(ee_action, valid, chunk)  # (E, S + 2 + hi)
    S = valid.shape[1]
    Ls = torch.arange(lo, hi + 1)  # (nL,)
    t = torch.arange(S)
    sums = cs[:, t[:, None] + Ls[None]] - cs[:, t][..., None]  # (E, S, nL)
    err = (sums / chunk - target[..., None]).abs()
    err = err + 1e-6 * (Ls - chunk).abs().float() / chunk  # prefer lengths near T on ties
    return Ls[err.argmin(-1)]


def chunk_lengths(demos, chunk: int, mode: Mode, rate_model: ActionRateModel | None = None
                  ) -> torch.Tensor:
    """The length L (E, S) long of the chunk starting at every step, for ``mode`` (see the
    module docstring). ``debias`` needs ``rate_model`` (see ``fit_rate_model``)."""
    if mode not in MODES:
        raise DebiasError(f"mode: unknown debiasing mode {mode!r}; use one of {', '.join(MODES)}")
    valid = demos.valid.bool()
    E, S = valid.shape
    if mode == "none":
        return torch.full((E, S), chunk, dtype=torch.long)
    lo, hi = length_range(chunk)
    if mode == "episode":
        length = demos.length.float()
        L = (chunk * length / length.mean()).round().long().clamp(lo, hi)  # (E,)
        return L[:, None].expand(E, S).clone()
    if mode == "uniform":
        mean_rate = float(action_rate(demos.ee_action)[valid].mean()) if valid.any() else 0.0
        target = torch.full((E, S), mean_rate)
    else:
        if rate_model is None:
            raise DebiasError("mode 'debias' needs a fitted rate_model; call fit_rate_model "
                              "first")
        target = predict_rates(rate_model, demos)
    return match_lengths(demos.ee_action, valid, chunk, target)


# ====================================================================== resampling
def resample_chunks(ee_action: torch.Tensor, valid: torch.Tensor, e: torch.Tensor,
                    t: torch.Tensor, lengths: torch.Tensor, chunk: int) -> torch.Tensor:
    """The chunks of L = ``lengths`` steps starting at (e, t) (all (N,)), resampled to ``chunk``
    steps (N, T, 3).

    The (x, y) deltas are integrated into an end-effector path, the path is sampled at T+1
    evenly spaced times in [0, L] by linear interpolation and differenced again, so a resampled
    chunk covers the same path in T steps (its rate is scaled by L/T). The grip command is read
    at the nearest original step. Past an episode's end the arm stays put (zero deltas) and the
    grip keeps its last value.
    """
    E, S, A = ee_action.shape
    hi = length_range(chunk)[1]
    valid = valid.bool()
    act = ee_action.float() * valid[..., None].float()
    n_valid = valid.sum(1)  # valid steps are a prefix of each episode (DemoSet.length)
    pad = hi + 2
    pos = F.pad(act[..., :2].cumsum(1), (0, 0, 1, pad))  # (E, S + 1 + pad, 2)
    pos[:, S + 1:] = pos[:, S:S + 1]
    src = torch.minimum(torch.arange(S + pad)[None], (n_valid - 1).clamp_min(0)[:, None])
    grip = ee_action[..., 2:].float()
    grip_pad = grip.gather(1, src[..., None].expand(E, S + pad, A - 2))  # (E, S + pad, 1)
    j = torch.arange(chunk + 1, dtype=torch.float32)
    times = t[:, None].float() + j[None] * lengths[:, None].float() / chunk  # (N, T+1)
    lo_i = times.floor().long()
    frac = (times - lo_i.float())[..., None]
    ee = e[:, None].expand_as(lo_i)
    p = pos[ee, lo_i] * (1 - frac) + pos[ee, (lo_i + 1).clamp(max=pos.shape[1] - 1)] * frac
    dxy = p[:, 1:] - p[:, :-1]  # (N, T, 2)
    mid = (t[:, None].float() + (j[:-1][None] + 0.5) * lengths[:, None].float() / chunk)
    g = grip_pad[e[:, None].expand(-1, chunk), mid.floor().long().clamp(max=S + pad - 1)]
    return torch.cat([dxy, g], -1).clamp(-1.0, 1.0)


def chunk_rate(chunks: torch.Tensor) -> torch.Tensor:
    """Mean action rate of each chunk (N,)."""
    return action_rate(chunks).mean(-1)
