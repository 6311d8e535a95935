"""The POET loop: co-evolve (world, agent) pairs, batched on one device, exactly resumable.

One iteration (``PoetRun.step``):

1. every ``reproduce_every`` iterations, reproduction: eligible parents (latest normalized score
   >= ``repro_threshold``) make ``mutation_attempts`` children through the generator; each child
   goes through the validator; the minimal criterion keeps children on which the parent's agent
   scores in [``mc_low``, ``mc_high``]; PATA-EC novelty ranks them; up to ``max_admitted`` are
   admitted, each paired with a copy of the best agent on it; beyond ``max_active`` the oldest
   pairs move to the archive;
2. one ES step for every active pair, all pairs in one batched call;
3. every agent scored on its own world (one batched call); ANNECS updated;
4. every ``transfer_every`` iterations, transfers: every agent scored on every other active
   world (direct transfer), the best ``transfer_proposals`` candidates per target fine-tuned by
   one ES step there (proposal transfer), and the best candidate replaces the incumbent only if
   it beats the incumbent's best recent score (Enhanced POET);
5. one line of ``metrics.jsonl``, events in ``events.jsonl``, a checkpoint.

All randomness derives from the root seed and the iteration (ES noise, levels, env keys,
mutation seeds) or from one numpy generator saved in every checkpoint, so that a resumed run
writes the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoworld import rng
from autoworld.poet import decisions
from autoworld.poet.checkpoint import load_latest, save_checkpoint
from autoworld.poet.config import PoetConfig, PoetError
from autoworld.poet.executor import Executor, make_executor
from autoworld.poet.policy import PoetPolicy
from autoworld.poet.rollout import EsJob, EvalJob, WorldEntry
from autoworld.poet.scores import ScoreMatrix
from autoworld.poet.worlds import initial_world, make_backend, propose_child, validate_world
from autoworld.spec import atomic_write_text
from autoworld.validation import world_key

log = logging.getLogger(__name__)
WALL_CLOCK_FIELDS = ("wall_s", "steps_per_s")
"""Fields of a metrics line that depend on the machine's speed (left out of exactness checks)."""


@dataclass
class Pair:
    """An active (world, agent) pair and its optimizer state."""

    world: str
    agent: str
    created: int  # creation stamp (the oldest retire first)
    theta: torch.Tensor  # (D,)
    m: torch.Tensor
    v: torch.Tensor
    t: int = 0
    sigma: float = 0.1
    lr: float = 0.01
    recent: list[float] = field(default_factory=list)

    def meta(self) -> dict[str, Any]:
        return {"world": self.world, "agent": self.agent, "created": self.created, "t": self.t,
                "sigma": self.sigma, "lr": self.lr, "recent": self.recent}


class PoetRun:
    """A POET run in ``run_dir``: ``run(callback)`` iterates until ``config.iterations``."""

    def __init__(self, config: PoetConfig, run_dir: str | Path, resume: bool = False,
                 executor: Executor | None = None) -> None:
        self.cfg = config
        self.dir = Path(run_dir)
        self.policy = PoetPolicy(config.obs_size, config.embed_dim, config.hidden,
                                 value_head=config.learner == "ppo")
        self.executor = executor or make_executor(config.backend, self.policy, config.device,
                                                  config.address, config.bucketing,
                                                  cuda_graph=config.cuda_graph)
        self.backend = make_backend(config.generator, config.generator_model)
        self.worlds: dict[str, WorldEntry] = {}
        self.pairs: list[Pair] = []
        self.archive: list[dict[str, Any]] = []  # {"world", "agent", "archived_at"}
        self.archived_theta: dict[str, torch.Tensor] = {}
        self.lineage: dict[str, dict[str, Any]] = {}  # world -> {"parent", "iteration", "name"}
        self.seen: set[str] = set()  # world keys ever proposed (``validation.world_key``)
        self.matrix = ScoreMatrix()
        self.annecs = decisions.AnnecsCounter(config.solved_threshold)
        self.np_rng = np.random.default_rng(rng.derive_seed(config.seed, "poet"))
        self.iteration = 0
        self.counters = {"world": 0, "agent": 0, "stamp": 0, "transfers_attempted": 0,
                         "transfers_accepted": 0, "children_admitted": 0, "env_steps": 0}
        self.warnings: list[str] = []
        self._tb = None
        if resume:
            self._resume()
        else:
            self._start()

    # ================================================================== set-up
    def _start(self) -> None:
        if (self.dir / "checkpoints").exists():
            raise PoetError(f"run_dir: {self.dir} already holds a run; pass --resume to continue "
                            "it or choose another --run-dir")
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.dir / "config.json", self.cfg.model_dump_json(indent=2))
        entry = initial_world(self.cfg)
        w = self._new_world_id()
        self.worlds[w] = entry
        self.seen.add(world_key(entry.spec))
        self.lineage[w] = {"parent": None, "iteration": 0, "name": entry.spec.name}
        a = self._new_agent_id()
        theta = self.policy.init(rng.derive_seed(self.cfg.seed, "policy-init"))
        self.pairs.append(self._pair(w, a, theta))
        for name in ("metrics.jsonl", "events.jsonl"):
            (self.dir / name).write_text("")

    def _pair(self, world: str, agent: str, theta: torch.Tensor, sigma: float | None = None,
              lr: float | None = None) -> Pair:
        self.counters["stamp"] += 1
        z = torch.zeros_like(theta)
        base_lr = self.cfg.lr if self.cfg.learner == "es" else self.cfg.ppo.learning_rate
        return Pair(world, agent, self.counters["stamp"], theta.clone(), z, z.clone(), 0,
                    self.cfg.sigma if sigma is None else sigma, base_lr if lr is None else lr)

    def _new_world_id(self) -> str:
        self.counters["world"] += 1
        return f"w{self.counters['world'] - 1:04d}"

    def _new_agent_id(self) -> str:
        self.counters["agent"] += 1
        return f"a{self.counters['agent'] - 1:04d}"

    # ================================================================== logging
    def _append(self, name: str, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        with open(self.dir / name, "a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _event(self, events: list, what: str, /, **data: Any) -> None:
        events.append({"iteration": self.iteration, "event": what, **data})

    # ================================================================== one iteration
    def step(self) -> dict[str, Any]:
        """Run one iteration; returns its metrics line."""
        cfg = self.cfg
        it = self.iteration
        start = time.perf_counter()
        steps0 = self.executor.env_steps
        events: list[dict[str, Any]] = []
        admitted: list[dict[str, Any]] = []
        if it > 0 and it % cfg.reproduce_every == 0:
            admitted = self._reproduce(events)
        self._optimize()
        self._score_own_worlds()
        transfers = 0
        if it > 0 and it % cfg.transfer_every == 0 and len(self.pairs) > 1:
            transfers = self._transfer(events)
        new_solved = self.annecs.observe(
            (p.world, p.recent[-1]) for p in self.pairs if p.recent)
        for w in new_solved:
            self._event(events, "solved", world=w, name=self.worlds[w].spec.name)
        spent = self.executor.env_steps - steps0
        self.counters["env_steps"] += spent
        wall = time.perf_counter() - start
        scores = {p.world: round(p.recent[-1], 6) for p in self.pairs}
        line = {
            "iteration": it,
            "active_pairs": len(self.pairs),
            "archived_pairs": len(self.archive),
            "annecs": self.annecs.value,
            "coverage": round(self.coverage(), 6),
            "admitted": [a["world"] for a in admitted],
            "admitted_novelty": [round(a["novelty"], 6) for a in admitted],
            "transfers": transfers,
            "transfers_total": self.counters["transfers_accepted"],
            "mean_score": round(float(np.mean(list(scores.values()))), 6),
            "scores": scores,
            "env_steps": self.counters["env_steps"],
            "wall_s": round(wall, 4),
            "steps_per_s": round(spent / max(wall, 1e-9), 1),
        }
        self.iteration += 1
        self._append("events.jsonl", events)
        self._append("metrics.jsonl", [line])
        self._tensorboard(line)
        self.save()
        return line

    def run(self, callback: Callable[[dict[str, Any]], None] | None = None,
            stop_after: int | None = None) -> None:
        """Iterate until ``config.iterations`` (or ``stop_after`` more iterations)."""
        done = 0
        while self.iteration < self.cfg.iterations:
            if stop_after is not None and done >= stop_after:
                break
            line = self.step()
            done += 1
            if callback is not None:
                callback(line)

    # ------------------------------------------------------------------ optimization
    @property
    def _greedy(self) -> bool:
        return self.cfg.learner == "es" and self.cfg.greedy

    def _seed(self, *names: object) -> int:
        return rng.derive_seed(self.cfg.seed, self.iteration, *names)

    def _learn(self, jobs: list[EsJob]):
        """One optimization step of every job with the run's learner (one batched call)."""
        cfg = self.cfg
        if cfg.learner == "ppo":
            return self.executor.ppo_steps(self.worlds, jobs, cfg.ppo)
        return self.executor.es_steps(self.worlds, jobs, cfg.population, cfg.episodes, cfg.l2)

    def _optimize(self) -> None:
        cfg = self.cfg
        jobs = [EsJob(p.agent, p.world, p.theta, p.m, p.v, p.t, p.sigma, p.lr,
                      self._seed("es", p.agent), self._greedy, cfg.train_levels)
                for p in self.pairs]
        results = self._learn(jobs)
        for p, r in zip(self.pairs, results, strict=True):
            p.theta, p.m, p.v, p.t = r.theta, r.m, r.v, r.t
            if cfg.learner == "es":  # POET's schedules; PPO keeps its learning rate
                p.sigma = max(cfg.sigma_min, p.sigma * cfg.sigma_decay)
                p.lr = max(cfg.lr_min, p.lr * cfg.lr_decay)
            self.matrix.bump(p.agent)

    def _theta(self, agent: str) -> torch.Tensor:
        for p in self.pairs:
            if p.agent == agent:
                return p.theta
        return self.archived_theta[agent]

    def _fill(self, agents: list[str], worlds: list[str],
              extra_worlds: dict[str, WorldEntry] | None = None) -> np.ndarray:
        """(A, W) scores from the matrix, evaluating the missing entries in one batched call."""
        missing = self.matrix.missing(agents, worlds)
        if missing:
            pool = {**self.worlds, **(extra_worlds or {})}
            jobs = [EvalJob(a, w, self._theta(a), self._seed("eval", a, w), self._greedy)
                    for a, w in missing]
            scores = self.executor.evaluate(pool, jobs, self.cfg.eval_episodes,
                                            self.cfg.validation_levels)
            for (a, w), s in zip(missing, scores, strict=True):
                self.matrix.set(a, w, s)
        return self.matrix.matrix(agents, worlds)

    def _score_own_worlds(self) -> None:
        """Every agent on its own world only (the diagonal), in one batched call."""
        scores = self._fill_pairs([(p.agent, p.world) for p in self.pairs], {})
        for p, s in zip(self.pairs, scores, strict=True):
            p.recent = [*p.recent, float(s)][-self.cfg.transfer_history:]

    # ------------------------------------------------------------------ reproduction
    def _archive_sample(self) -> list[dict[str, Any]]:
        n = self.cfg.archive_sample
        if len(self.archive) <= n:
            return list(self.archive)
        idx = np.sort(self.np_rng.choice(len(self.archive), size=n, replace=False))
        return [self.archive[i] for i in idx]

    def _reproduce(self, events: list) -> list[dict[str, Any]]:
        cfg = self.cfg
        eligible = [p for p in self.pairs if p.recent and p.recent[-1] >= cfg.repro_threshold]
        if not eligible:
            self._event(events, "reproduction_skipped", reason="no pair reaches the "
                        f"reproduction threshold {cfg.repro_threshold}")
            return []
        children: dict[str, WorldEntry] = {}
        parent_of: dict[str, Pair] = {}
        for attempt in range(cfg.mutation_attempts):
            parent = eligible[int(self.np_rng.integers(len(eligible)))]
            seed = self._seed("mutate", attempt) & 0x7FFFFFFF
            spec, why = propose_child(self.backend, self.worlds[parent.world].spec, seed,
                                      cfg.mutation_strength)
            name = spec.name if spec is not None else None
            if spec is not None and world_key(spec) in self.seen:
                spec, why = None, "duplicate: this world was proposed before"
            if spec is not None:
                self.seen.add(world_key(spec))
                entry, why = validate_world(spec, cfg)
                if entry is not None:
                    key = f"c{self.iteration}-{attempt}"
                    children[key], parent_of[key] = entry, parent
                    continue
            self._event(events, "rejected", parent=parent.world, child=name, reason=why)
        if not children:
            return []
        keys = list(children)
        # minimal criterion: the parent's agent on each child (one batched call)
        mc = self._fill_pairs([(parent_of[k].agent, k) for k in keys], children)
        # PATA-EC: every active and (sampled) archived agent on known worlds and children
        sample = self._archive_sample()
        agents = [p.agent for p in self.pairs] + [a["agent"] for a in sample]
        known = [p.world for p in self.pairs] + [a["world"] for a in sample]
        passing = [k for k, s in zip(keys, mc, strict=True)
                   if decisions.passes_minimal_criterion(s, cfg.mc_low, cfg.mc_high)]
        mat = self._fill(agents, known + passing, children)
        descs = np.stack([decisions.pata_ec(mat[:, j], cfg.mc_low, cfg.mc_high)
                          for j in range(mat.shape[1])], axis=1) if mat.size else mat
        cands = []
        for k, s in zip(keys, mc, strict=True):
            nov = float("nan")
            if k in passing:
                j = len(known) + passing.index(k)
                nov = decisions.novelty(descs[:, j], descs[:, : len(known)].T, cfg.novelty_k)
            cands.append(decisions.Candidate(k, s, nov))
        chosen, reasons = decisions.admit(cands, cfg.mc_low, cfg.mc_high, cfg.max_admitted)
        for k, why in reasons.items():
            self._event(events, "rejected", parent=parent_of[k].world,
                        child=children[k].spec.name, reason=why,
                        parent_score=round(float(mc[keys.index(k)]), 6))
        admitted = []
        for c in chosen:
            w = self._new_world_id()
            entry = children[c.key]
            self.worlds[w] = entry
            j = len(known) + passing.index(c.key)
            col = mat[:, j]
            for a, s in zip(agents, col, strict=True):
                self.matrix.set(a, w, float(s))
            best = agents[int(np.nanargmax(col))] if np.isfinite(col).any() else \
                parent_of[c.key].agent
            agent = self._new_agent_id()
            self.pairs.append(self._pair(w, agent, self._theta(best)))
            self.matrix.set(agent, w, float(np.nanmax(col)))
            self.lineage[w] = {"parent": parent_of[c.key].world, "iteration": self.iteration,
                               "name": entry.spec.name}
            self.annecs.admit(w)
            self.counters["children_admitted"] += 1
            info = {"world": w, "name": entry.spec.name, "parent": parent_of[c.key].world,
                    "parent_score": round(c.parent_score, 6), "novelty": round(c.novelty, 6),
                    "agent_from": best}
            self._event(events, "admitted", **info)
            admitted.append(info)
        for k in keys:  # the children's provisional columns (admitted ones were copied)
            self.matrix.drop_world(k)
        for i in sorted(decisions.retire_oldest([p.created for p in self.pairs], cfg.max_active),
                        reverse=True):
            p = self.pairs.pop(i)
            self.archive.append({"world": p.world, "agent": p.agent,
                                 "archived_at": self.iteration})
            self.archived_theta[p.agent] = p.theta.clone()
            self._event(events, "archived", world=p.world, agent=p.agent)
        return admitted

    def _fill_pairs(self, pairs: list[tuple[str, str]], extra: dict[str, WorldEntry]
                    ) -> list[float]:
        jobs = [EvalJob(a, w, self._theta(a), self._seed("eval", a, w), self._greedy)
                for a, w in pairs]
        scores = self.executor.evaluate({**self.worlds, **extra}, jobs, self.cfg.eval_episodes,
                                        self.cfg.validation_levels)
        for (a, w), s in zip(pairs, scores, strict=True):
            self.matrix.set(a, w, s)
        return scores

    # ------------------------------------------------------------------ transfer
    def _transfer(self, events: list) -> int:
        cfg = self.cfg
        agents = [p.agent for p in self.pairs]
        worlds = [p.world for p in self.pairs]
        direct = self._fill(agents, worlds)  # (A, W): agent i on world j
        proposals: list[tuple[int, int]] = []  # (candidate i, target j)
        for j in range(len(worlds)):
            order = [i for i in np.argsort(-direct[:, j], kind="stable") if i != j]
            proposals += [(int(i), j) for i in order[: cfg.transfer_proposals]]
        prop_scores: dict[tuple[int, int], float] = {}
        prop_theta: dict[tuple[int, int], torch.Tensor] = {}
        if proposals:
            jobs = []
            for i, j in proposals:
                th = self.pairs[i].theta
                z = torch.zeros_like(th)
                tgt = self.pairs[j]
                jobs.append(EsJob(agents[i], worlds[j], th, z, z.clone(), 0, tgt.sigma, tgt.lr,
                                  self._seed("proposal", agents[i], worlds[j]), self._greedy,
                                  cfg.train_levels))
            results = self._learn(jobs)
            ev = [EvalJob(agents[i], worlds[j], r.theta, self._seed("eval-prop", i, j),
                          self._greedy)
                  for (i, j), r in zip(proposals, results, strict=True)]
            scores = self.executor.evaluate(self.worlds, ev, cfg.eval_episodes,
                                            cfg.validation_levels)
            for key, r, s in zip(proposals, results, scores, strict=True):
                prop_scores[key], prop_theta[key] = s, r.theta
        accepted = 0
        updates = []
        for j, tgt in enumerate(self.pairs):
            cands = {f"{agents[i]}:direct": float(direct[i, j])
                     for i in range(len(agents)) if i != j}
            cands.update({f"{agents[i]}:proposal": s for (i, jj), s in prop_scores.items()
                          if jj == j})
            self.counters["transfers_attempted"] += 1
            choice, threshold = decisions.transfer_decision(tgt.recent, cands)
            if choice is None:
                continue
            name, kind = choice.split(":")
            i = agents.index(name)
            theta = self.pairs[i].theta if kind == "direct" else prop_theta[(i, j)]
            updates.append((j, theta.clone(), cands[choice]))
            self._event(events, "transfer", target=tgt.world, incumbent=tgt.agent, source=name,
                        kind=kind, score=round(cands[choice], 6),
                        threshold=round(threshold, 6))
        for j, theta, score in updates:
            tgt = self.pairs[j]
            tgt.theta = theta
            tgt.m, tgt.v, tgt.t = torch.zeros_like(theta), torch.zeros_like(theta), 0
            self.matrix.bump(tgt.agent)
            self.matrix.set(tgt.agent, tgt.world, score)
            tgt.recent = [*tgt.recent, score][-cfg.transfer_history:]
            accepted += 1
        self.counters["transfers_accepted"] += accepted
        return accepted

    # ------------------------------------------------------------------ metrics
    def coverage(self) -> float:
        """Fraction of the registered grid components used by at least one world of the run."""
        from autoworld.envs.grid.components.registry import REGISTRY

        used = set()
        for e in self.worlds.values():
            for factor in (e.spec.transition, e.spec.observation, e.spec.reward):
                used.update(c.kind for c in factor)
        return len(used & set(REGISTRY)) / max(1, len(REGISTRY))

    def _tensorboard(self, line: dict[str, Any]) -> None:
        if not self.cfg.tensorboard:
            return
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.cfg = self.cfg.model_copy(update={"tensorboard": False})
                return
            self._tb = SummaryWriter(str(self.dir / "tensorboard"))
        it = line["iteration"]
        for k in ("active_pairs", "annecs", "coverage", "transfers", "mean_score",
                  "steps_per_s", "archived_pairs"):
            self._tb.add_scalar(f"poet/{k}", line[k], it)
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        self.executor.close()

    # ================================================================== checkpoints
    def save(self) -> Path:
        tensors: dict[str, torch.Tensor] = {}
        for p in self.pairs:
            tensors[f"pair/{p.agent}/theta"] = p.theta
            tensors[f"pair/{p.agent}/m"] = p.m
            tensors[f"pair/{p.agent}/v"] = p.v
        for a, th in self.archived_theta.items():
            tensors[f"archive/{a}/theta"] = th
        tensors["rng/torch"] = torch.get_rng_state()
        state = {
            "iteration": self.iteration,
            "config": self.cfg.model_dump(mode="json"),
            "pairs": [p.meta() for p in self.pairs],
            "archive": self.archive,
            "worlds": {k: {"spec": e.spec.model_dump(mode="json"), "optimal": e.optimal,
                           "random": e.random} for k, e in self.worlds.items()},
            "lineage": self.lineage,
            "seen": sorted(self.seen),
            "matrix": self.matrix.state(),
            "annecs": self.annecs.state(),
            "counters": self.counters,
            "rng": {"numpy": self.np_rng.bit_generator.state,
                    "python": list(random.getstate()[1]),
                    "python_version": random.getstate()[0],
                    "engine": "per-job keys derived from (seed, iteration, job)"},
        }
        return save_checkpoint(self.dir / "checkpoints", self.iteration, tensors, state)

    def _resume(self) -> None:
        from autoworld.spec import parse_spec

        tensors, state, self.warnings = load_latest(self.dir / "checkpoints")
        saved = PoetConfig.model_validate(state["config"])
        # options that change the trajectory must match; the iteration budget may grow
        free = {"iterations", "backend", "address", "device", "gifs", "tensorboard", "bucketing",
                "cuda_graph"}
        fixed = saved.model_dump(exclude=free)
        now = self.cfg.model_dump(exclude=free)
        diff = sorted(k for k in fixed if fixed[k] != now[k])
        if diff:
            raise PoetError(f"resume: options {', '.join(diff)} differ from the checkpointed "
                            "run; resume with the same options (see config.json)")
        self.iteration = int(state["iteration"])
        self.worlds = {k: WorldEntry(parse_spec(d["spec"]), d["optimal"], d["random"])
                       for k, d in state["worlds"].items()}
        self.pairs = [Pair(d["world"], d["agent"], d["created"],
                           tensors[f"pair/{d['agent']}/theta"], tensors[f"pair/{d['agent']}/m"],
                           tensors[f"pair/{d['agent']}/v"], d["t"], d["sigma"], d["lr"],
                           list(d["recent"])) for d in state["pairs"]]
        self.archive = state["archive"]
        self.archived_theta = {a["agent"]: tensors[f"archive/{a['agent']}/theta"]
                               for a in self.archive}
        self.lineage = state["lineage"]
        # a checkpoint written before worlds were keyed by world_key holds content hashes:
        # the run's own worlds are known again by their keys (other proposals may repeat once)
        self.seen = set(state["seen"]) | {world_key(e.spec) for e in self.worlds.values()}
        self.matrix = ScoreMatrix.from_state(state["matrix"])
        self.annecs = decisions.AnnecsCounter.from_state(state["annecs"])
        self.counters = state["counters"]
        self.np_rng.bit_generator.state = state["rng"]["numpy"]
        random.setstate((state["rng"]["python_version"], tuple(state["rng"]["python"]), None))
        torch.set_rng_state(tensors["rng/torch"])
        # drop log lines written after the checkpoint (the iteration runs again)
        for name in ("metrics.jsonl", "events.jsonl"):
            self._truncate_log(self.dir / name)

    def _truncate_log(self, path: Path) -> None:
        keep = []
        if path.exists():
            for raw in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue  # a line cut by the kill
                if rec.get("iteration", 0) < self.iteration:
                    keep.append(raw)
        from autoworld.atomic import atomic_write

        atomic_write(path, "".join(r + "\n" for r in keep))
