"""E1: task diversity vs demonstrations per task, at equal dataset size.

Three pretraining sets of the same size N (``scale.pretrain_episodes``) on one arm (arm3):

- ``episode``-sampled: N episodes drawn uniformly from a pool over every task and fresh scenes
  (the most diverse);
- ``task``-sampled: N episodes from half of the tasks only (more demonstrations per task,
  fewer tasks);
- ``scenario``-sampled: N episodes over every task but from a few fixed scenes per task
  (``scale.scenes_per_world``; more demonstrations per scene).

Each set trains one chunk policy per seed (same architecture, same steps); each policy is scored
on every task, on in-domain (``train``) and on held-out shifted scenes (``shifted``). The paper's
finding holds here if ``episode`` > ``task`` and ``episode`` > ``scenario``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from autoworld.embodiment.common import (
    Scale,
    collect,
    fmt_ci,
    markdown_table,
    mean_ci,
    save_plot,
    train,
    worlds_for,
    write_results,
)

STRATEGIES = ("episode", "task", "scenario")
SPLITS = ("train", "shifted")
ARM = "arm3"


def _subsets(pool, scenario, n: int, tasks: tuple[str, ...], rng: np.random.Generator
             ) -> dict[str, Any]:
    """The three equal-size training sets of one seed."""
    ep = pool.subset(rng.choice(len(pool), n, replace=False).tolist())
    k = max(1, math.ceil(len(tasks) / 2))
    chosen = set(rng.choice(list(tasks), k, replace=False).tolist())
    cand = [i for i, t in enumerate(pool.task_name) if t in chosen]
    task = pool.subset(rng.choice(cand, min(n, len(cand)), replace=False).tolist())
    scen = scenario.subset(rng.choice(len(scenario), min(n, len(scenario)),
                                      replace=False).tolist())
    return {"episode": ep, "task": task, "scenario": scen}


def _diversity(demos) -> dict[str, int]:
    return {"episodes": len(demos), "tasks": len(set(demos.task_name)),
            "scenes": len({(t, int(s)) for t, s in zip(demos.task_name, demos.scene.tolist(),
                                                       strict=True)})}


def run(scale: Scale, seeds: int, out: Path, device: str = "cpu", progress=None
        ) -> dict[str, Any]:
    """Run E1 over ``seeds`` seeds; writes results.json, results.md and e1_success.png."""
    from autoworld.learners.arm_bc import rollout_success

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    worlds = worlds_for(scale.tasks, ARM)
    n = scale.pretrain_episodes
    scores: dict[str, dict[str, list[float]]] = {s: {sp: [] for sp in SPLITS}
                                                 for s in STRATEGIES}
    per_task: dict[str, dict[str, list[list[float]]]] = {s: {sp: [] for sp in SPLITS}
                                                         for s in STRATEGIES}
    diversity: dict[str, list[dict[str, int]]] = {s: [] for s in STRATEGIES}
    for seed in range(seeds):
        pool = collect(worlds, n * scale.pool_factor, seed=1000 * seed + 1, device=device)
        scenario = collect(worlds, n, seed=1000 * seed + 2, device=device,
                           num_scenes=scale.scenes_per_world)
        sets = _subsets(pool, scenario, n, scale.tasks, np.random.default_rng(seed))
        for name in STRATEGIES:
            policy = train(sets[name], scale, "none", seed, device)
            diversity[name].append(_diversity(sets[name]))
            for split in SPLITS:
                res = rollout_success(policy, worlds, scale.eval_episodes * len(worlds),
                                      seed=100_000 + seed, split=split, device=device)
                scores[name][split].append(res.success)
                per_task[name][split].append(res.per_world)
            if progress is not None:
                progress(f"E1 seed {seed} {name}: in-domain {scores[name]['train'][-1]:.3f}, "
                         f"shifted {scores[name]['shifted'][-1]:.3f}")
    agg = {s: {sp: mean_ci(scores[s][sp]) for sp in SPLITS} for s in STRATEGIES}
    task_agg = {s: {sp: {t: mean_ci([row[i] for row in per_task[s][sp]])["mean"]
                         for i, t in enumerate(scale.tasks)} for sp in SPLITS}
                for s in STRATEGIES}
    rows = [[s, f"{np.mean([d['tasks'] for d in diversity[s]]):.1f}",
             f"{np.mean([d['scenes'] for d in diversity[s]]):.1f}",
             fmt_ci(agg[s]["train"]), fmt_ci(agg[s]["shifted"])] for s in STRATEGIES]
    md = "## Success by pretraining sampling (equal size " f"{n})\n\n"
    md += markdown_table(["sampling", "tasks", "task-scenes", "in-domain", "shifted"], rows)
    md += "\n## Per-task success (means)\n\n"
    md += markdown_table(["sampling", "split", *scale.tasks],
                         [[s, sp, *(f"{task_agg[s][sp][t]:.2f}" for t in scale.tasks)]
                          for s in STRATEGIES for sp in SPLITS])
    ep = agg["episode"]["train"]["mean"]
    verdict = ep > agg["task"]["train"]["mean"] and ep > agg["scenario"]["train"]["mean"]
    md += (f"\nEpisode-sampled beats task- and scenario-sampled in-domain: "
           f"**{'yes' if verdict else 'no'}** (means; see the intervals).\n")

    def draw(ax):
        x = np.arange(len(STRATEGIES))
        for j, sp in enumerate(SPLITS):
            m = np.array([agg[s][sp]["mean"] for s in STRATEGIES])
            lo = np.array([agg[s][sp]["lo"] for s in STRATEGIES])
            hi = np.array([agg[s][sp]["hi"] for s in STRATEGIES])
            ax.bar(x + (j - 0.5) * 0.38, m, 0.38, yerr=[m - lo, hi - m], capsize=3,
                   label="in-domain" if sp == "train" else "shifted scenes")
        ax.set_xticks(x, [f"{s}-sampled" for s in STRATEGIES])
        ax.set_ylabel("success rate")
        ax.legend()

    save_plot(out / "e1_success.png", draw, f"E1: equal-size pretraining (N={n}, {ARM})")
    return write_results(out, "E1", scale, seeds, {
        "arm": ARM, "size": n, "per_seed": scores, "aggregate": agg, "per_task": task_agg,
        "diversity": diversity, "episode_sampled_wins": bool(verdict),
        "plots": ["e1_success.png"]}, md, started)
