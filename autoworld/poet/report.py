"""Plots and GIFs of a POET run directory, rebuilt from its files alone
(``autoworld evolve --report RUN_DIR``).

- ``annecs.png``: ANNECS, active pairs and coverage of the component space over iterations;
- ``lineage.png``: the tree of worlds (parent -> child), archived worlds grey, solved ones green;
- ``scores.png``: the agent x world score matrix of the last checkpoint (missing entries blank);
- ``gifs/<world>.gif``: each active agent acting in its world (validation level 0).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoworld.atomic import atomic_write
from autoworld.poet.config import PoetError


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` (a line cut short by a kill is skipped)."""
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise PoetError(f"{run_dir}: no metrics.jsonl; give the folder of an `autoworld "
                        "evolve` run")
    return _read_jsonl(path)


def latest_state(run_dir: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from autoworld.poet.checkpoint import load_latest

    tensors, state, _ = load_latest(Path(run_dir) / "checkpoints")
    return tensors, state


def state_from_logs(run_dir: str | Path, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``plot_lineage`` needs, rebuilt from the run's logs alone: the worlds scored at the
    first logged iteration (and any parent not admitted in the log) are roots; ``admitted``
    events give each child its parent and iteration, ``solved`` events the solved worlds; the
    active worlds are those scored at the last logged iteration."""
    path = Path(run_dir) / "events.jsonl"
    events = _read_jsonl(path) if path.exists() else []
    lineage: dict[str, dict[str, Any]] = {
        w: {"parent": None, "iteration": metrics[0].get("iteration", 0)}
        for w in (metrics[0].get("scores") or {} if metrics else {})}
    for e in events:
        if e.get("event") == "admitted":
            lineage[e["world"]] = {"parent": e["parent"], "iteration": e["iteration"]}
    for d in list(lineage.values()):
        if d["parent"] is not None and d["parent"] not in lineage:
            lineage[d["parent"]] = {"parent": None, "iteration": 0}
    active = list((metrics[-1].get("scores") or {}) if metrics else {})
    return {"lineage": lineage, "pairs": [{"world": w} for w in active],
            "annecs": {"solved": [e["world"] for e in events if e.get("event") == "solved"]}}


def _save_fig(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return atomic_write(path, buf.getvalue())


def plot_annecs(metrics: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = [m["iteration"] for m in metrics]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.step(it, [m["annecs"] for m in metrics], where="post", label="ANNECS", lw=2)
    ax.step(it, [m["active_pairs"] for m in metrics], where="post", label="active pairs")
    ax.set_xlabel("iteration")
    ax.set_ylabel("count")
    ax2 = ax.twinx()
    ax2.plot(it, [m["coverage"] for m in metrics], color="tab:green", ls="--",
             label="component coverage")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("coverage")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], loc="upper left", fontsize=8)
    ax.set_title("POET: ANNECS over iterations")
    path = _save_fig(fig, path)
    plt.close(fig)
    return path


def plot_lineage(state: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lineage = state["lineage"]
    active = {p["world"] for p in state["pairs"]}
    solved = set(state["annecs"]["solved"])
    children: dict[str | None, list[str]] = {}
    for w, d in sorted(lineage.items()):
        children.setdefault(d["parent"], []).append(w)
    pos: dict[str, tuple[float, float]] = {}
    leaf = [0]

    def place(w: str, depth: int) -> float:
        kids = children.get(w, [])
        ys = [place(k, depth + 1) for k in kids]
        y = float(np.mean(ys)) if ys else float(leaf[0])
        if not ys:
            leaf[0] += 1
        pos[w] = (lineage[w]["iteration"], y)
        return y

    for root in children.get(None, []):
        place(root, 0)
    fig, ax = plt.subplots(figsize=(8, max(3, 0.35 * max(1, leaf[0]))))
    for w, d in lineage.items():
        if d["parent"] in pos:
            (x0, y0), (x1, y1) = pos[d["parent"]], pos[w]
            ax.plot([x0, x1], [y0, y1], color="0.6", lw=1)
    for w, (x, y) in pos.items():
        color = "tab:green" if w in solved else ("tab:blue" if w in active else "0.6")
        ax.scatter([x], [y], color=color, s=40, zorder=3)
        ax.annotate(w, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("iteration created")
    ax.set_yticks([])
    ax.set_title("lineage of worlds (green: solved, blue: active, grey: archived)")
    path = _save_fig(fig, path)
    plt.close(fig)
    return path


def plot_scores(state: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autoworld.poet.scores import ScoreMatrix

    m = ScoreMatrix.from_state(state["matrix"])
    agents = [p["agent"] for p in state["pairs"]] + [a["agent"] for a in state["archive"]]
    worlds = [p["world"] for p in state["pairs"]] + [a["world"] for a in state["archive"]]
    mat = m.matrix(agents, worlds)
    fig, ax = plt.subplots(figsize=(1 + 0.5 * len(worlds), 1 + 0.4 * len(agents)))
    im = ax.imshow(mat, vmin=-0.2, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(worlds)), worlds, rotation=60, fontsize=7)
    ax.set_yticks(range(len(agents)), agents, fontsize=7)
    ax.set_xlabel("world")
    ax.set_ylabel("agent")
    fig.colorbar(im, ax=ax, label="normalized score")
    ax.set_title("agent x world scores (blank: not evaluated)")
    path = _save_fig(fig, path)
    plt.close(fig)
    return path


@torch.no_grad()
def agent_gif(spec, theta: torch.Tensor, policy, path: Path, seed: int = 0, tile: int = 16,
              max_frames: int = 120) -> Path:
    """A GIF of ``theta`` acting in ``spec`` from validation level 0 until its episode ends."""
    from PIL import Image

    from autoworld.envs.grid.engine import GridEngine
    from autoworld.envs.grid.levels import bank
    from autoworld.envs.grid.render import render_rgb
    from autoworld.poet.policy import ViewLayout, sample_actions
    from autoworld.poet.rollout import _job_keys, _pin_env_keys, policy_view

    eng = GridEngine(policy_view(spec), num_envs=1, seed=0, banks=[bank(spec, "validation")],
                     final_obs=False)
    obs = eng.reset(level_ids=torch.zeros(1, dtype=torch.long))
    layout = ViewLayout.of([spec], [0])
    keys = _job_keys(seed, 1)
    _pin_env_keys(eng, keys)
    params = policy.unpack(theta[None])
    frames = [render_rgb(eng, 0, tile)]
    for t in range(min(spec.max_steps, max_frames)):
        sym = policy.fit_view(obs["image"], layout).reshape(1, 1, policy.S, policy.S)
        act = sample_actions(policy.logits(params, sym).reshape(1, -1), keys, t)
        before = eng.state.clone()
        obs, _, term, trunc, _ = eng.step(act)
        if bool(term[0] | trunc[0]):
            frames.append(render_rgb(eng, 0, tile, state=before))
            break
        frames.append(render_rgb(eng, 0, tile))
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=120,
                   loop=0)
    return atomic_write(path, buf.getvalue())


def build_report(run_dir: str | Path, gifs: bool = True) -> tuple[list[Path], list[str]]:
    """Write the plots (and GIFs) of ``run_dir``; returns the files written and notes on what
    could not be. A folder without a checkpoint (only its logs copied off a machine, say) still
    gets ``annecs.png`` and ``lineage.png``, from its logs; the score matrix and the GIFs need
    the run's state."""
    from autoworld.poet.checkpoint import list_checkpoints
    from autoworld.poet.policy import PoetPolicy
    from autoworld.spec import parse_spec

    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    annecs = plot_annecs(metrics, run_dir / "plots" / "annecs.png")
    if not list_checkpoints(run_dir / "checkpoints"):
        lineage = plot_lineage(state_from_logs(run_dir, metrics),
                               run_dir / "plots" / "lineage.png")
        return [annecs, lineage], [f"{run_dir / 'checkpoints'}: no checkpoint, so annecs.png "
                                   "and lineage.png come from metrics.jsonl and events.jsonl; "
                                   "the score matrix and GIFs need one"]
    tensors, state = latest_state(run_dir)
    out = [annecs, plot_lineage(state, run_dir / "plots" / "lineage.png"),
           plot_scores(state, run_dir / "plots" / "scores.png")]
    if gifs:
        cfg = state["config"]
        policy = PoetPolicy(cfg["obs_size"], cfg["embed_dim"], cfg["hidden"],
                            value_head=cfg["learner"] == "ppo")
        for p in state["pairs"]:
            spec = parse_spec(state["worlds"][p["world"]]["spec"])
            out.append(agent_gif(spec, tensors[f"pair/{p['agent']}/theta"], policy,
                                 run_dir / "gifs" / f"{p['world']}.gif"))
    return out, []
