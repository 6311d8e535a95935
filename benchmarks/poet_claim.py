"""POET's central claim, tested: on worlds POET solved late in a run, does optimizing from
scratch directly on that world with the same budget succeed as often?

Reads a finished run directory (``autoworld evolve --run-dir DIR``). The "late" worlds are the
admitted children POET solved (ANNECS), the later half by the iteration they were solved at. For
each, ``--seeds`` fresh agents are optimized with the run's own ES settings directly on that
world for as many ES steps as POET's whole run had taken when it solved it (all worlds' seeds
in one batched call per step), scored on the validation levels every ``--eval-every`` steps; a seed
succeeds when a score reaches the run's solved threshold. Prints one JSON line per world and a
summary line comparing success rates (POET's is 1 on these worlds by construction: they were
solved), whichever way it comes out.

``--worlds admitted`` removes that selection: the later half of all admitted worlds by the
iteration they were admitted at, solved or not. POET succeeds on a world if it solved it by the
end of the run; the from-scratch budget is the iterations POET took to solve it, or the whole
run's for a world it did not solve. The summary gives both success rates with 95% bootstrap
intervals over the worlds, and their paired difference.

Example:
    autoworld evolve --iterations 200 --run-dir runs/claim
    python benchmarks/poet_claim.py runs/claim --seeds 5 [--worlds admitted]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines() if x]


def late_solved_worlds(run_dir: Path) -> list[tuple[str, int]]:
    """(world, iteration solved) of the later half of the admitted worlds POET solved."""
    solved = sorted(((e["world"], e["iteration"]) for e in _events(run_dir)
                     if e["event"] == "solved"), key=lambda x: (x[1], x[0]))
    return solved[len(solved) // 2:]


def late_admitted_worlds(run_dir: Path, iterations: int) -> list[tuple[str, int, bool]]:
    """(world, from-scratch budget, solved by POET) of the later half of the admitted worlds by
    admission iteration, solved or not: the budget is the iterations POET took to solve the
    world, or all ``iterations`` of the run when it did not."""
    events = _events(run_dir)
    solved_at = {e["world"]: e["iteration"] for e in events if e["event"] == "solved"}
    admitted = sorted((e["iteration"], e["world"]) for e in events if e["event"] == "admitted")
    late = admitted[len(admitted) // 2:]
    return [(w, solved_at[w] + 1 if w in solved_at else iterations, w in solved_at)
            for _, w in late]


def success_interval(values: list[float]) -> dict:
    """Mean of per-world values with a 95% percentile-bootstrap interval over the worlds."""
    import numpy as np

    from autoworld.leaderboard.stats import bootstrap_ci

    ci = bootstrap_ci([np.asarray(values, dtype=float)], "mean")
    return {"mean": round(ci.point, 4), "lo": round(ci.lo, 4), "hi": round(ci.hi, 4)}


def from_scratch(run_dir: Path, late: list[tuple[str, int]], seeds: int,
                 eval_every: int) -> list[dict]:
    """Optimize ``seeds`` fresh agents directly on each world of ``late`` ((world, budget in
    optimization steps)), all worlds' agents in one batched executor call per step (a world's
    agents stop at its budget), scored on the validation levels every ``eval_every`` steps and
    at the end. Every agent draws its own randomness, so a world's row is the same as when it
    runs alone (tested). Returns one row per world, in ``late``'s order."""
    from autoworld import rng
    from autoworld.poet.config import PoetConfig
    from autoworld.poet.executor import LocalExecutor
    from autoworld.poet.policy import PoetPolicy
    from autoworld.poet.report import latest_state
    from autoworld.poet.rollout import EsJob, EvalJob, WorldEntry
    from autoworld.spec import parse_spec

    _, state = latest_state(run_dir)
    cfg = PoetConfig.model_validate(state["config"])
    budget = dict(late)
    worlds = {w: WorldEntry(parse_spec(state["worlds"][w]["spec"]), state["worlds"][w]["optimal"],
                            state["worlds"][w]["random"]) for w in budget}
    policy = PoetPolicy(cfg.obs_size, cfg.embed_dim, cfg.hidden,
                        value_head=cfg.learner == "ppo")
    ex = LocalExecutor(policy, cfg.device, cfg.bucketing, cfg.cuda_graph)  # as the run stepped
    j_lr = cfg.ppo.learning_rate if cfg.learner == "ppo" else cfg.lr
    jobs = []
    for world in budget:
        for s in range(seeds):
            th = policy.init(rng.derive_seed(cfg.seed, "claim", world, s))
            z = torch.zeros_like(th)
            jobs.append(EsJob(f"s{s}", world, th, z, z.clone(), 0, cfg.sigma, j_lr, 0,
                              cfg.learner == "es" and cfg.greedy, cfg.train_levels))
    best = {(j.world, j.agent): float("-inf") for j in jobs}
    for step in range(max(budget.values())):
        active = [j for j in jobs if step < budget[j.world]]
        on = {j.world: worlds[j.world] for j in active}
        for j in active:
            j.seed = rng.derive_seed(cfg.seed, "claim-es", j.world, j.agent, step)
        res = (ex.ppo_steps(on, active, cfg.ppo) if cfg.learner == "ppo"
               else ex.es_steps(on, active, cfg.population, cfg.episodes, cfg.l2))
        for j, r in zip(active, res, strict=True):
            j.theta, j.m, j.v, j.t = r.theta, r.m, r.v, r.t
            if cfg.learner == "es":
                j.sigma = max(cfg.sigma_min, j.sigma * cfg.sigma_decay)
                j.lr = max(cfg.lr_min, j.lr * cfg.lr_decay)
        due = [j for j in active
               if (step + 1) % eval_every == 0 or step + 1 == budget[j.world]]
        if due:
            scores = ex.evaluate({j.world: worlds[j.world] for j in due},
                                 [EvalJob(j.agent, j.world, j.theta, step, j.greedy) for j in due],
                                 cfg.eval_episodes, cfg.validation_levels)
            for j, sc in zip(due, scores, strict=True):
                best[j.world, j.agent] = max(best[j.world, j.agent], sc)
    rows = []
    for world in budget:
        b = [best[world, f"s{s}"] for s in range(seeds)]
        rows.append({"world": world, "name": worlds[world].spec.name,
                     "budget_es_steps": budget[world], "seeds": seeds,
                     "scratch_success": sum(x >= cfg.solved_threshold for x in b) / seeds,
                     "scratch_best": b})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--max-worlds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worlds", choices=["solved", "admitted"], default="solved",
                    help="solved: the later half of the admitted worlds POET solved (POET's "
                    "success is 1 by construction); admitted: the later half of all admitted "
                    "worlds, solved or not")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worlds == "solved":
        late = [(w, at + 1, True) for w, at in late_solved_worlds(args.run_dir)]
    else:
        from autoworld.poet.report import latest_state

        _, state = latest_state(args.run_dir)
        late = late_admitted_worlds(args.run_dir, int(state["iteration"]))
    late = late[: args.max_worlds]
    if not late:
        what = "solved no admitted world" if args.worlds == "solved" else "admitted no world"
        print(json.dumps({"bench": "poet_claim", "worlds": 0, "note": f"POET {what} in this "
                          "run; run longer"}))
        return
    rows = from_scratch(args.run_dir, [(w, max(1, budget)) for w, budget, _ in late],
                        args.seeds, args.eval_every)
    for row, (_, _, solved) in zip(rows, late, strict=True):
        row["poet_success"] = float(solved)
        print(json.dumps({"bench": "poet_claim_world", "selection": args.worlds, **row}),
              flush=True)
    poet = [r["poet_success"] for r in rows]
    scratch = [r["scratch_success"] for r in rows]
    print(json.dumps({"bench": "poet_claim", "selection": args.worlds, "worlds": len(rows),
                      "seeds": args.seeds, "poet_success": success_interval(poet),
                      "scratch_success": success_interval(scratch),
                      "poet_minus_scratch": success_interval(
                          [a - b for a, b in zip(poet, scratch, strict=True)])}))


if __name__ == "__main__":
    main()
