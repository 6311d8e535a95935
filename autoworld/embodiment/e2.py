"""E2: multi- vs single-embodiment pretraining, and transfer to held-out arms.

Pretraining sets of equal size (``scale.pretrain_episodes`` episodes of ``scale.e2_tasks``) on
the first m arms of ``TRAIN_ARMS`` (m = 1: single-embodiment, arm3 only; m = 4: arm3, arm4,
arm2 and arm6). The held-out arms are arm5 (interpolation: its joint count lies inside the
training range) and arm7 (extrapolation). Reported:

- zero-shot success on each held-out arm vs the number m of training embodiments;
- fine-tuning curves on each held-out arm after 0 (zero-shot), then ``scale.finetune_sizes``
  demonstrations, from single-embodiment pretraining, multi-embodiment pretraining and from
  scratch. The paper's finding ("multi-embodiment pretraining is optional") holds here if the
  single- and multi-embodiment curves overlap.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from autoworld.embodiment.common import (
    Scale,
    collect,
    errorbar,
    fmt_ci,
    markdown_table,
    mean_ci,
    save_plot,
    success,
    train,
    worlds_for,
    write_results,
)

TRAIN_ARMS = ("arm3", "arm4", "arm2", "arm6")
HELD_OUT = {"arm5": "interpolation", "arm7": "extrapolation"}
INITS = ("single", "multi", "scratch")


def run(scale: Scale, seeds: int, out: Path, device: str = "cpu", progress=None
        ) -> dict[str, Any]:
    """Run E2 over ``seeds`` seeds; writes results.json, results.md and two plots."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    n = scale.pretrain_episodes
    sizes = [0, *scale.finetune_sizes]
    arms = TRAIN_ARMS[:scale.e2_max_arms]
    zero_shot: dict[str, dict[int, list[float]]] = {a: {m: [] for m in range(1, len(arms) + 1)}
                                                    for a in HELD_OUT}
    curves: dict[str, dict[str, dict[int, list[float]]]] = {
        a: {i: {k: [] for k in sizes} for i in INITS} for a in HELD_OUT}
    in_domain: dict[int, list[float]] = {m: [] for m in range(1, len(arms) + 1)}
    for seed in range(seeds):
        pretrained = {}
        for m in range(1, len(arms) + 1):
            worlds = [w for arm in arms[:m] for w in worlds_for(scale.e2_tasks, arm)]
            demos = collect(worlds, n, seed=1000 * seed + 10 + m, device=device)
            policy = train(demos, scale, "none", seed, device)
            pretrained[m] = policy
            in_domain[m].append(success(policy, worlds, scale, 100_000 + seed, device=device))
            for arm in HELD_OUT:
                zero_shot[arm][m].append(success(policy, worlds_for(scale.e2_tasks, arm), scale,
                                                 100_000 + seed, device=device))
            if progress is not None:
                progress(f"E2 seed {seed} m={m}: in-domain {in_domain[m][-1]:.3f}, zero-shot "
                         + ", ".join(f"{a} {zero_shot[a][m][-1]:.3f}" for a in HELD_OUT))
        inits = {"single": pretrained[1], "multi": pretrained[len(arms)], "scratch": None}
        for arm in HELD_OUT:
            target = worlds_for(scale.e2_tasks, arm)
            ft = collect(target, max(scale.finetune_sizes), seed=1000 * seed + 50, device=device)
            for name, init in inits.items():
                for k in sizes:
                    if k == 0:
                        score = (zero_shot[arm][1 if name == "single" else len(arms)][-1]
                                 if init is not None else float("nan"))
                    else:
                        sub = ft.subset(list(range(min(k, len(ft)))))
                        pol = (train(sub, scale, "none", seed, device) if init is None
                               else train(sub, scale, "none", seed, device, init=init))
                        score = success(pol, target, scale, 100_000 + seed, device=device)
                    curves[arm][name][k].append(score)
                if progress is not None:
                    progress(f"E2 seed {seed} {arm} from {name}: "
                             + ", ".join(f"{k}:{curves[arm][name][k][-1]:.2f}" for k in sizes))
    zs = {a: {m: mean_ci(v) for m, v in d.items()} for a, d in zero_shot.items()}
    cv = {a: {i: {k: mean_ci(v) for k, v in d.items()} for i, d in c.items()}
          for a, c in curves.items()}
    ind = {m: mean_ci(v) for m, v in in_domain.items()}
    md = "## Zero-shot success vs number of training embodiments\n\n"
    md += markdown_table(["training arms", "in-domain", *(f"{a} ({HELD_OUT[a]})"
                                                          for a in HELD_OUT)],
                         [[", ".join(arms[:m]), fmt_ci(ind[m]),
                           *(fmt_ci(zs[a][m]) for a in HELD_OUT)] for m in ind])
    for arm in HELD_OUT:
        md += f"\n## Fine-tuning on {arm} ({HELD_OUT[arm]})\n\n"
        md += markdown_table(["pretraining", *(f"{k} demos" for k in sizes)],
                             [[i, *(fmt_ci(cv[arm][i][k]) for k in sizes)] for i in INITS])

    def draw_ft(ax):
        for arm, style in zip(HELD_OUT, ("-", "--"), strict=True):
            for i in INITS:
                ks = [k for k in sizes if cv[arm][i][k]["n"]]
                errorbar(ax, ks, [cv[arm][i][k] for k in ks], f"{arm} {i}", linestyle=style)
        ax.set_xlabel("fine-tuning demonstrations")
        ax.set_ylabel("success rate")
        ax.legend(fontsize=7)

    def draw_zs(ax):
        ms = list(ind)
        for arm in HELD_OUT:
            errorbar(ax, ms, [zs[arm][m] for m in ms], f"{arm} zero-shot")
        errorbar(ax, ms, [ind[m] for m in ms], "in-domain")
        ax.set_xticks(ms)
        ax.set_xlabel("training embodiments")
        ax.set_ylabel("success rate")
        ax.legend(fontsize=8)

    save_plot(out / "e2_finetune.png", draw_ft, "E2: fine-tuning on held-out arms")
    save_plot(out / "e2_zero_shot.png", draw_zs, "E2: zero-shot vs training embodiments")
    gap = {a: float(np.nanmean([cv[a]["multi"][k]["mean"] - cv[a]["single"][k]["mean"]
                                for k in scale.finetune_sizes])) for a in HELD_OUT}
    md += ("\nMean fine-tuned success gap, multi minus single embodiment: "
           + ", ".join(f"{a} {g:+.3f}" for a, g in gap.items()) + ".\n")
    return write_results(out, "E2", scale, seeds, {
        "train_arms": arms, "held_out": HELD_OUT, "size": n,
        "per_seed": {"zero_shot": zero_shot, "finetune": curves, "in_domain": in_domain},
        "aggregate": {"zero_shot": zs, "finetune": cv, "in_domain": ind},
        "multi_minus_single": gap, "plots": ["e2_finetune.png", "e2_zero_shot.png"]},
        md, started)
