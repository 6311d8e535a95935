"""What the embodiment experiments share: scales, data collection, training, evaluation,
statistics and report writing.

Every experiment is ``run(scale, seeds, out, device) -> dict``; it writes ``results.json`` (the
configuration, every per-seed number and the aggregates), ``results.md`` (Markdown tables of
means with 95% t-intervals over seeds) and PNG plots into ``out``, each file atomically.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import math
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from autoworld.atomic import atomic_write
from autoworld.errors import AutoworldError

log = logging.getLogger(__name__)


class ExperimentError(AutoworldError, ValueError):
    """An unknown experiment or scale, or an impossible configuration."""


class Scale(BaseModel):
    """Sizes of an experiment run. ``full`` is the reported configuration, ``quick`` a
    few-minute CPU version, ``tiny`` the end-to-end test size."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(..., description="Preset name.")
    seeds: int = Field(5, ge=1, description="Default number of seeds.")
    chunk: int = Field(8, ge=1, description="Action-chunk length T.")
    hidden: int = Field(128, ge=8, description="Policy width.")
    layers: int = Field(2, ge=1, description="Policy depth.")
    bc_steps: int = Field(3000, ge=1, description="Pretraining Adam steps.")
    finetune_steps: int = Field(800, ge=1, description="Fine-tuning Adam steps.")
    batch_size: int = Field(256, ge=1, description="Chunks per step.")
    stride: int = Field(1, ge=1, description="Chunk start stride.")
    rate_steps: int = Field(600, ge=1, description="Action-rate model Adam steps.")
    eval_episodes: int = Field(64, ge=1, description="Evaluation episodes per world and split.")
    tasks: tuple[str, ...] = Field(("reach", "via_point", "push", "pick_place", "reach_around",
                                    "wipe", "dwell_slow"), description="E1 task set.")
    pretrain_episodes: int = Field(420, ge=1, description="Pretraining dataset size (E1 "
                                   "budget, E2/E3 base size).")
    pool_factor: int = Field(3, ge=1, description="E1: the pool holds this many times the "
                             "budget.")
    scenes_per_world: int = Field(6, ge=1, description="E1 scenario-sampled: scenes per world.")
    e2_tasks: tuple[str, ...] = Field(("reach", "via_point"), description="E2 tasks.")
    e2_max_arms: int = Field(4, ge=1, le=4, description="E2: most training embodiments "
                             "(the multi-embodiment set is the first this many of TRAIN_ARMS).")
    finetune_sizes: tuple[int, ...] = Field((15, 30, 60, 120), description="Fine-tuning "
                                            "demonstrations (E2, E3).")
    e3_tasks: tuple[str, ...] = Field(("reach", "via_point", "reach_around", "dwell_slow",
                                       "push"), description="E3 pretraining tasks (arm3).")
    e3_target: str = Field("reach_around", description="E3 fine-tuning task (on arm4).")
    size_multipliers: tuple[float, ...] = Field((1.0, 1.5, 2.0, 3.0), description="E3: biased "
                                                "pretraining sizes relative to the base size.")


SCALES: dict[str, Scale] = {
    "full": Scale(name="full"),
    "quick": Scale(name="quick", seeds=2, chunk=8, hidden=128, layers=2, bc_steps=800,
                   finetune_steps=200, batch_size=128, stride=2, rate_steps=200,
                   eval_episodes=24, tasks=("reach", "via_point", "reach_around", "dwell_slow"),
                   pretrain_episodes=96, pool_factor=2, scenes_per_world=3, e2_tasks=("reach",),
                   finetune_sizes=(15, 60), e3_tasks=("reach", "reach_around", "dwell_slow"),
                   size_multipliers=(1.0, 2.0)),
    "tiny": Scale(name="tiny", seeds=2, chunk=4, hidden=32, layers=1, bc_steps=30,
                  finetune_steps=10, batch_size=64, stride=4, rate_steps=20, eval_episodes=4,
                  tasks=("reach", "reach_around"), pretrain_episodes=12, pool_factor=2,
                  scenes_per_world=2, e2_tasks=("reach",), e2_max_arms=2, finetune_sizes=(4,),
                  e3_tasks=("reach", "reach_around"), size_multipliers=(1.0, 2.0)),
}


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise ExperimentError(f"unknown scale {name!r}; use one of {', '.join(SCALES)}")
    return SCALES[name]


# ====================================================================== data and training
def worlds_for(tasks: Sequence[str], embodiment: str) -> list:
    """End-effector-interface specs of ``tasks`` on ``embodiment``."""
    from autoworld.envs.arm.spec import arm_world

    return [arm_world(t, embodiment, interface="ee_delta") for t in tasks]


def collect(worlds: Sequence, episodes: int, seed: int, device: str = "cpu", **kw):
    """``episodes`` successful expert demonstrations over ``worlds`` (round-robin) with the
    standard operators (``autoworld.envs.arm.demos.collect_demos``; failed episodes are
    dropped, and a few extra are collected to make up for them)."""
    from autoworld.envs.arm.demos import collect_demos
    from autoworld.envs.arm.experts import standard_operators

    extra = math.ceil(0.15 * episodes) + len(worlds)
    demos = collect_demos(list(worlds), episodes + extra, standard_operators(), seed=seed,
                          device=device, **kw)
    ok = demos.success.nonzero().flatten()[:episodes]
    if ok.numel() < episodes:
        log.warning("only %d of %d demonstrations succeeded", ok.numel(), episodes)
    if ok.numel() == 0:
        raise ExperimentError("the expert succeeded in no episode; check the worlds")
    return demos.subset(ok)


def policy_config(scale: Scale, arch: str = "mlp", head: str = "mse"):
    from autoworld.learners.xembodiment import XPolicyConfig

    return XPolicyConfig(arch=arch, head=head, chunk=scale.chunk, hidden=scale.hidden,
                         layers=scale.layers)


def train(demos, scale: Scale, mode: str, seed: int, device: str = "cpu", init=None,
          steps: int | None = None, rate_model=None, arch: str = "mlp", head: str = "mse"):
    """A policy cloned from ``demos`` with chunk mode ``mode``: a fresh one, or a copy of
    ``init`` fine-tuned (``scale.finetune_steps`` at a third of the learning rate)."""
    from autoworld.learners.arm_bc import ArmBCConfig, build_chunks, make_policy, train_bc
    from autoworld.learners.debias import RateModelConfig

    base_lr = ArmBCConfig().learning_rate

    rate_cfg = RateModelConfig(steps=scale.rate_steps)
    data = build_chunks(demos, scale.chunk, mode, stride=scale.stride, rate_model=rate_model,
                        rate_config=rate_cfg, seed=seed)
    if init is None:
        policy = make_policy(policy_config(scale, arch, head), seed=seed)
        cfg = ArmBCConfig(debias=mode, steps=steps or scale.bc_steps,
                          batch_size=scale.batch_size)
    else:
        policy = copy.deepcopy(init)
        cfg = ArmBCConfig(debias=mode, steps=steps or scale.finetune_steps,
                          batch_size=scale.batch_size, learning_rate=base_lr / 3)
    train_bc(policy, data, cfg, seed=seed, device=device)
    return policy.cpu()


def success(policy, worlds: Sequence, scale: Scale, seed: int, split: str = "train",
            device: str = "cpu") -> float:
    """Success rate of ``policy`` over ``scale.eval_episodes`` episodes per world."""
    from autoworld.learners.arm_bc import rollout_success

    res = rollout_success(policy.to(device), list(worlds), scale.eval_episodes * len(worlds),
                          seed=seed, split=split, device=device)
    policy.cpu()
    return res.success


# ====================================================================== statistics
def mean_ci(values: Sequence[float], bounds: tuple[float, float] | None = (0.0, 1.0)
            ) -> dict[str, float]:
    """Mean and 95% Student-t interval over seeds (a single seed: a zero-width interval),
    intersected with ``bounds`` (default [0, 1]: every experiment reports rates or shares);
    NaN values (not measured) are left out."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if x.size == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    m = float(x.mean())
    if x.size == 1:
        return {"mean": m, "lo": m, "hi": m, "n": 1}
    from scipy import stats

    half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    lo, hi = m - half, m + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return {"mean": m, "lo": lo, "hi": hi, "n": int(x.size)}


def fmt_ci(c: dict[str, float]) -> str:
    if c["n"] == 0:
        return "-"
    return f"{c['mean']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]"


def data_equivalence(sizes: Sequence[float], biased: Sequence[float], target: float
                     ) -> float | None:
    """How many times the base size (``sizes[0]``) of biased data matches ``target`` (the
    debiased score at the base size): linear interpolation of the biased learning curve in
    log size. 1.0 when the base size already matches; None when even the largest size stays
    below the target (the multiplier exceeds ``sizes[-1] / sizes[0]``)."""
    s = np.log(np.asarray(sizes, dtype=float))
    y = np.maximum.accumulate(np.asarray(biased, dtype=float))  # a curve that never falls
    if y[0] >= target:
        return 1.0
    for i in range(1, len(s)):
        if y[i] >= target:
            f = (target - y[i - 1]) / max(y[i] - y[i - 1], 1e-12)
            return float(math.exp(s[i - 1] + f * (s[i] - s[i - 1]) - s[0]))
    return None


# ====================================================================== reports
def environment() -> dict[str, Any]:
    from autoworld import __version__

    return {"autoworld": __version__, "torch": torch.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "threads": torch.get_num_threads()}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def save_plot(path: Path, draw: Callable[[Any], None], title: str) -> None:
    """Draw with ``draw(ax)`` on a fresh figure and write the PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        draw(ax)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    atomic_write(path, buf.getvalue())


def errorbar(ax, xs, cis: Sequence[dict[str, float]], label: str, **kw) -> None:
    m = np.array([c["mean"] for c in cis])
    lo = np.array([c["lo"] for c in cis])
    hi = np.array([c["hi"] for c in cis])
    ax.errorbar(xs, m, yerr=[m - lo, hi - m], label=label, capsize=3, marker="o", **kw)


def _json_safe(x: Any) -> Any:
    """NaN and infinities become null (strict JSON); tuples become lists; numpy scalars
    become Python numbers."""
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_results(out: Path, experiment: str, scale: Scale, seeds: int, data: dict[str, Any],
                  markdown: str, started: float) -> dict[str, Any]:
    """Write ``results.json`` and ``results.md`` atomically; returns the JSON payload."""
    payload = {"experiment": experiment, "scale": scale.model_dump(mode="json"),
               "seeds": seeds, "seconds": time.perf_counter() - started,
               "environment": environment(), **data}
    atomic_write(out / "results.json", json.dumps(_json_safe(payload), indent=1,
                                                  allow_nan=False) + "\n")
    head = (f"# {experiment} ({scale.name} scale, {seeds} seeds)\n\n"
            "Means over seeds with 95% t-intervals in brackets. Success rates of batched "
            f"rollouts ({scale.eval_episodes} episodes per world and split).\n\n")
    atomic_write(out / "results.md", head + markdown)
    return payload
