"""E3: action-rate debiasing in pretraining and fine-tuning.

Pretraining data: ``scale.e3_tasks`` on arm3, demonstrated by the standard operators (different
speeds, jitter and pauses; same path distribution). Fine-tuning data: ``scale.e3_target`` on
arm4. Reported:

1. The 2x2 matrix: pretraining chunks biased (as recorded) or debiased x fine-tuning chunks biased
   or debiased, fine-tuned at each of ``scale.finetune_sizes`` demonstrations and scored on the
   target (in-domain and shifted scenes).
2. Pretraining baselines at the base size: no debiasing, one uniform rate, per-episode duration
   normalization, and debiasing, scored in-domain on the pretraining worlds.
3. The data-equivalence multiplier: biased pretraining at ``scale.size_multipliers`` times the
   base size; the multiplier is where the biased learning curve (interpolated in log size)
   reaches the debiased score at the base size (the paper: about 2.5x).
4. The left/right check on ``reach_around``: the share of training chunks that move to the right
   of the start-goal line, and agreement with the side the expert passed, biased vs debiased.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from autoworld.embodiment.common import (
    Scale,
    collect,
    data_equivalence,
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

PRETRAIN_ARM, TARGET_ARM = "arm3", "arm4"
MODES = ("none", "uniform", "episode", "debias")
CELLS = (("none", "none"), ("none", "debias"), ("debias", "none"), ("debias", "debias"))
NAME = {"none": "biased", "debias": "debiased"}


def side_split(demos, chunk: int, mode: str, rate_model=None, seed: int = 0,
               rate_steps: int = 200) -> dict[str, float]:
    """Left/right statistics of the ``reach_around`` episodes' chunks under ``mode``: the share
    of chunks (starting in the first half of their episode) whose motion is to the right of the
    start-to-goal line, and the share that agrees with the side the expert recorded."""
    from autoworld.learners.arm_bc import build_chunks
    from autoworld.learners.debias import RateModelConfig

    idx = [i for i, t in enumerate(demos.task_name) if t == "reach_around"
           and int(demos.side[i]) != 0]
    if not idx:
        return {"chunks": 0, "right_share": float("nan"), "agreement": float("nan")}
    sub = demos.subset(idx)
    cs = build_chunks(sub, chunk, mode, rate_model=rate_model,
                      rate_config=RateModelConfig(steps=rate_steps), seed=seed)
    early = cs.start < (sub.length[cs.episode] // 2)
    e = cs.episode[early]
    start = sub.ee[e, 0, :2]
    end = sub.ee[e, (sub.length[e] - 1).clamp_min(0), :2]
    line = end - start
    move = cs.chunks[early, :, :2].sum(1)
    cross = line[:, 0] * move[:, 1] - line[:, 1] * move[:, 0]  # > 0: left of the line
    right = cross < 0
    lateral = cross.abs() > 1e-6
    side = sub.side[e]
    # the expert records +1 for a detour to the right of the start-to-goal line, -1 to the
    # left (``ScriptedExpert.side``): no sign folding, so chunks that move to the wrong side
    # score low (folding the share to >= 0.5 hid exactly that)
    agree = ((right == (side > 0)) & lateral).float().sum() / lateral.float().sum().clamp_min(1)
    return {"chunks": int(lateral.sum()), "right_share": float(right[lateral].float().mean()),
            "agreement": float(agree)}


def run(scale: Scale, seeds: int, out: Path, device: str = "cpu", progress=None
        ) -> dict[str, Any]:
    """Run E3 over ``seeds`` seeds; writes results.json, results.md and two plots."""
    from autoworld.learners.debias import RateModelConfig, fit_rate_model

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    pre_worlds = worlds_for(scale.e3_tasks, PRETRAIN_ARM)
    target = worlds_for((scale.e3_target,), TARGET_ARM)
    n = scale.pretrain_episodes
    mults = list(scale.size_multipliers)
    sizes = [max(1, round(n * m)) for m in mults]
    ks = list(scale.finetune_sizes)
    matrix: dict[str, dict[str, dict[int, list[float]]]] = {
        f"{p}/{f}": {sp: {k: [] for k in ks} for sp in ("train", "shifted")} for p, f in CELLS}
    baselines: dict[str, list[float]] = {m: [] for m in MODES}
    curve: dict[int, list[float]] = {s: [] for s in sizes}
    splits: dict[str, list[dict[str, float]]] = {"none": [], "debias": []}
    for seed in range(seeds):
        big = collect(pre_worlds, max(sizes), seed=1000 * seed + 3, device=device)
        base = big.subset(list(range(min(n, len(big)))))
        rate_model, _ = fit_rate_model(base, scale.chunk, RateModelConfig(steps=scale.rate_steps),
                                       seed=seed)
        pre = {}
        for mode in MODES:
            pre[mode] = train(base, scale, mode, seed, device, rate_model=rate_model)
            baselines[mode].append(success(pre[mode], pre_worlds, scale, 100_000 + seed,
                                           device=device))
        for s in sizes:
            if s == n:
                curve[s].append(baselines["none"][-1])
                continue
            pol = train(big.subset(list(range(min(s, len(big))))), scale, "none", seed, device)
            curve[s].append(success(pol, pre_worlds, scale, 100_000 + seed, device=device))
        for mode in splits:
            splits[mode].append(side_split(base, scale.chunk, mode, rate_model, seed))
        if progress is not None:
            progress(f"E3 seed {seed} pretraining: " + ", ".join(
                f"{m} {baselines[m][-1]:.3f}" for m in MODES) + "; biased curve "
                + ", ".join(f"{s}:{curve[s][-1]:.3f}" for s in sizes))
        ft = collect(target, max(ks), seed=1000 * seed + 4, device=device)
        ft_rate, _ = fit_rate_model(ft, scale.chunk, RateModelConfig(steps=scale.rate_steps),
                                    seed=seed)
        for p, f in CELLS:
            for k in ks:
                sub = ft.subset(list(range(min(k, len(ft)))))
                pol = train(sub, scale, f, seed, device, init=pre[p], rate_model=ft_rate)
                for sp in ("train", "shifted"):
                    matrix[f"{p}/{f}"][sp][k].append(
                        success(pol, target, scale, 100_000 + seed, split=sp, device=device))
            if progress is not None:
                progress(f"E3 seed {seed} {NAME[p]} pretrain / {NAME[f]} fine-tune: "
                         + ", ".join(f"{k}:{matrix[f'{p}/{f}']['train'][k][-1]:.2f}"
                                     for k in ks))
    mat = {c: {sp: {k: mean_ci(v) for k, v in d.items()} for sp, d in m.items()}
           for c, m in matrix.items()}
    base_ci = {m: mean_ci(v) for m, v in baselines.items()}
    curve_ci = {s: mean_ci(v) for s, v in curve.items()}
    target_score = base_ci["debias"]["mean"]
    mult = data_equivalence(sizes, [curve_ci[s]["mean"] for s in sizes], target_score)
    per_seed_mult = [data_equivalence(sizes, [curve[s][i] for s in sizes],
                                      baselines["debias"][i]) for i in range(seeds)]
    split_agg = {m: {k: mean_ci([d[k] for d in v]) for k in ("right_share", "agreement")}
                 for m, v in splits.items()}

    md = f"## Pretraining baselines ({n} episodes, {', '.join(scale.e3_tasks)} on arm3)\n\n"
    md += markdown_table(["chunks", "in-domain success"],
                         [[m, fmt_ci(base_ci[m])] for m in MODES])
    md += "\n## Biased/debiased x pretrain/fine-tune (target "
    md += f"{scale.e3_target} on {TARGET_ARM})\n\n"
    for sp in ("train", "shifted"):
        md += f"\n{'In-domain' if sp == 'train' else 'Shifted'} scenes:\n\n"
        md += markdown_table(["pretrain / fine-tune", *(f"{k} demos" for k in ks)],
                             [[f"{NAME[p]} / {NAME[f]}", *(fmt_ci(mat[f'{p}/{f}'][sp][k])
                                                          for k in ks)] for p, f in CELLS])
    md += "\n## Data equivalence\n\n"
    md += markdown_table(["biased pretraining size", "success"],
                         [[s, fmt_ci(curve_ci[s])] for s in sizes])
    top = sizes[-1] / sizes[0]
    md += (f"\nDebiased at {n}: {fmt_ci(base_ci['debias'])}. Data-equivalence multiplier "
           f"(mean curves): **{f'{mult:.2f}x' if mult is not None else f'> {top:g}x'}**"
           f" (per seed: {', '.join('-' if x is None else f'{x:.2f}' for x in per_seed_mult)})."
           "\n\n## Left/right split of reach_around chunks\n\n")
    md += markdown_table(["chunks", "right share", "agreement with expert side"],
                         [[NAME[m], fmt_ci(split_agg[m]["right_share"]),
                           fmt_ci(split_agg[m]["agreement"])] for m in splits])

    def draw_ft(ax):
        for p, f in CELLS:
            errorbar(ax, ks, [mat[f"{p}/{f}"]["train"][k] for k in ks],
                     f"{NAME[p]} pretrain / {NAME[f]} fine-tune")
        ax.set_xscale("log")
        ax.set_xlabel("fine-tuning demonstrations")
        ax.set_ylabel("success rate")
        ax.legend(fontsize=7)

    def draw_eq(ax):
        errorbar(ax, sizes, [curve_ci[s] for s in sizes], "biased pretraining")
        ax.axhline(target_score, color="C1", linestyle="--", label=f"debiased at {n}")
        ax.set_xlabel("pretraining episodes")
        ax.set_ylabel("in-domain success")
        ax.legend(fontsize=8)

    save_plot(out / "e3_finetune.png", draw_ft, f"E3: fine-tuning on {scale.e3_target}")
    save_plot(out / "e3_data_equivalence.png", draw_eq, "E3: data equivalence of debiasing")
    return write_results(out, "E3", scale, seeds, {
        "pretrain_tasks": scale.e3_tasks, "target": [scale.e3_target, TARGET_ARM],
        "sizes": sizes, "finetune_sizes": ks,
        "per_seed": {"matrix": matrix, "baselines": baselines, "curve": curve,
                     "side_split": splits, "multiplier": per_seed_mult},
        "aggregate": {"matrix": mat, "baselines": base_ci, "curve": curve_ci,
                      "side_split": split_agg},
        "multiplier": mult, "multiplier_bound": None if mult is not None else top,
        "plots": ["e3_finetune.png", "e3_data_equivalence.png"]}, md, started)
