"""`autoworld evolve`: POET co-evolution of worlds and agents with a live display."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from autoworld.cli.common import check_device, console, fail, handle_errors, live_display


class _Display:
    """The live table: iteration, active pairs, ANNECS, transfers, steps/s, recent events."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.line: dict[str, Any] = {}
        self.transfers = 0

    def update(self, line: dict[str, Any]) -> None:
        self.line = line

    def __rich__(self) -> Table:
        m = self.line
        t = Table(title="autoworld evolve (POET)", show_header=False, min_width=44)
        t.add_column(style="bold")
        t.add_column(justify="right")
        t.add_row("iteration", f"{m.get('iteration', -1) + 1} / {self.total}")
        t.add_row("active pairs", str(m.get("active_pairs", "-")))
        t.add_row("archived pairs", str(m.get("archived_pairs", "-")))
        t.add_row("ANNECS", str(m.get("annecs", "-")))
        t.add_row("transfers (total)", str(m.get("transfers_total", "-")))
        t.add_row("mean score", f"{m.get('mean_score', float('nan')):.3f}")
        t.add_row("coverage", f"{m.get('coverage', float('nan')):.2f}")
        t.add_row("steps/s", f"{m.get('steps_per_s', 0):,.0f}")
        return t


def _summary(run_dir: Path) -> None:
    from autoworld.poet.report import latest_state, read_metrics

    metrics = read_metrics(run_dir)
    _, state = latest_state(run_dir)
    table = Table(title="worlds found")
    for col in ("world", "name", "parent", "born", "status", "score"):
        table.add_column(col)
    active = {p["world"]: p for p in state["pairs"]}
    solved = set(state["annecs"]["solved"])
    for w, d in sorted(state["lineage"].items()):
        p = active.get(w)
        status = ("solved " if w in solved else "") + ("active" if p else "archived")
        score = f"{p['recent'][-1]:.3f}" if p and p["recent"] else "-"
        table.add_row(w, d["name"], d["parent"] or "-", str(d["iteration"]), status, score)
    console.print(table)
    last = metrics[-1] if metrics else {}
    c = state["counters"]
    console.print(f"ANNECS {last.get('annecs', 0)}, {c['children_admitted']} children admitted, "
                  f"{c['transfers_accepted']} of {c['transfers_attempted']} transfer attempts "
                  f"accepted, {c['env_steps']:,} env steps", soft_wrap=True)


# evolve's options that set a PoetConfig field, by CLI name (pairs is max_active)
_CONFIG_FIELD = {"pairs": "max_active", "seed": "seed", "learner": "learner",
                 "generator": "generator", "generator_model": "generator_model", "world": "world",
                 "theme": "theme", "population": "population",
                 "reproduce_every": "reproduce_every", "transfer_every": "transfer_every",
                 "iterations": "iterations", "device": "device", "backend": "backend",
                 "address": "address", "bucketing": "bucketing", "cuda_graph": "cuda_graph"}
_RESUME_FREE = ("iterations", "device", "backend", "address", "bucketing", "cuda_graph")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _config_error(exc: Exception) -> str:
    """A PoetConfig validation error as one line naming the CLI options to fix."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc).replace("\n", " ")
    by_field = {f: cli for cli, f in _CONFIG_FIELD.items()}
    parts = []
    for e in errors():
        loc = e.get("loc") or ()
        where = _option(by_field.get(str(loc[0]), str(loc[0]))) if loc else "options"
        expected = (e.get("ctx") or {}).get("expected")
        if e.get("type") == "literal_error" and expected:
            parts.append(f"{where}: unknown value {e.get('input')!r}; use {expected}")
        else:
            parts.append(f"{where}: {e.get('msg')}")
    return "; ".join(parts)


@handle_errors
def evolve(
    ctx: typer.Context,
    iterations: int | None = typer.Option(None, "--iterations", "-n", min=1,
                                          help="POET iterations (quick preset: 60; POET: 200)."),
    pairs: int | None = typer.Option(None, "--pairs", "-p", min=1,
                                     help="Cap on active pairs (quick preset: 6; POET: 20)."),
    seed: int = typer.Option(0, "--seed", "-s", min=0, help="Root seed."),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Run directory (default "
                                        "runs/evolve-s<seed>)."),
    device: str = typer.Option("cpu", "--device", "-d", help="Torch device (cpu, cuda, ...)."),
    learner: str | None = typer.Option(None, "--learner", "-m", help="Pair optimizer: es "
                                       "(OpenAI-ES, POET's; the poet preset's default) or ppo "
                                       "(the quick preset's default: it learns within minutes); "
                                       "both batched over all pairs."),
    generator: str = typer.Option("procedural", "--generator", "-g",
                                  help="Mutation backend: procedural, openai or transformers."),
    generator_model: str | None = typer.Option(None, "--generator-model",
                                               help="Model of an LLM generator backend."),
    world: str = typer.Option("Empty-6x6", "--world", "-w",
                              help="Initial world (catalogue name or spec file)."),
    theme: str | None = typer.Option(None, "--theme", help="Generate the initial world from "
                                     "this sentence instead of --world."),
    preset: str = typer.Option("quick", "--preset", help="quick (a few minutes on a laptop) "
                               "or poet (the paper's population sizes and intervals)."),
    population: int | None = typer.Option(None, "--population", min=2,
                                          help="ES rollouts per step per pair (even)."),
    reproduce_every: int | None = typer.Option(None, "--reproduce-every", min=1,
                                               help="Iterations between reproductions."),
    transfer_every: int | None = typer.Option(None, "--transfer-every", min=1,
                                              help="Iterations between transfer attempts."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --run-dir from "
                                "its last good checkpoint, with its own options (--iterations, "
                                "--device, --backend, --address, --bucketing and --cuda-graph "
                                "may change)."),
    backend: str = typer.Option("local", "--backend", help="Executor: local or ray."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address."),
    bucketing: str | None = typer.Option(None, "--bucketing", help="Engine grouping of worlds: "
                                         "auto, components or none (speed only)."),
    cuda_graph: bool | None = typer.Option(None, "--cuda-graph/--no-cuda-graph",
                                           help="On CUDA, replay engine steps as recorded CUDA "
                                           "graphs (speed only)."),
    report: Path | None = typer.Option(None, "--report", help="Rebuild the plots and GIFs of "
                                       "RUN_DIR and exit."),
    threads: int = typer.Option(1, "--threads", min=0, help="torch CPU threads (0: torch's "
                                "default; 1 is fastest for POET's small networks)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live display."),
) -> None:
    """Co-evolve worlds and agents (POET): mutate worlds, admit novel ones that pass the minimal
    criterion, optimize every pair in one batched call, transfer agents between worlds."""
    import torch

    from autoworld.poet.config import PoetConfig
    from autoworld.poet.loop import PoetRun
    from autoworld.poet.report import build_report

    if report is not None:
        files, notes = build_report(report)
        for f in files:
            console.print(f"wrote {f}")
        for note in notes:
            console.print(f"[yellow]{escape(note)}[/yellow]")
        return
    if learner is not None and learner not in ("es", "ppo"):
        raise fail(f"--learner: unknown learner {learner!r}; use es or ppo")
    if preset not in ("quick", "poet"):
        raise fail(f"--preset: unknown preset {preset!r}; use quick or poet")
    check_device(device)
    if threads:
        torch.set_num_threads(threads)
    overrides = dict(iterations=iterations, max_active=pairs, seed=seed, device=device,
                     learner=learner, generator=generator, generator_model=generator_model,
                     world=world, theme=theme, population=population,
                     reproduce_every=reproduce_every, transfer_every=transfer_every,
                     backend=backend, address=address, bucketing=bucketing,
                     cuda_graph=cuda_graph)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    out = run_dir or Path("runs") / f"evolve-s{seed}"
    try:
        if resume and (out / "config.json").is_file():
            # continue with the run's own options; only these may change on resume
            saved = json.loads((out / "config.json").read_text())
            given = [name for name in _CONFIG_FIELD if name not in _RESUME_FREE
                     and getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"]
            differ = [f"{_option(n)} {overrides.get(_CONFIG_FIELD[n])!r} (the run's: "
                      f"{saved.get(_CONFIG_FIELD[n])!r})" for n in given
                      if overrides.get(_CONFIG_FIELD[n]) != saved.get(_CONFIG_FIELD[n])]
            if getattr(ctx.get_parameter_source("preset"), "name", "") == "COMMANDLINE":
                # the preset's values against the run's (the options given keep theirs)
                given = {_CONFIG_FIELD[n]: overrides[_CONFIG_FIELD[n]] for n in given
                         if _CONFIG_FIELD[n] in overrides}
                made = (PoetConfig.quick(**given) if preset == "quick"
                        else PoetConfig(**given)).model_dump(mode="json")
                # the fields a preset decides: those where the two presets differ
                quick, plain = PoetConfig.quick().model_dump(), PoetConfig().model_dump()
                fields = sorted(k for k in made if quick[k] != plain[k]
                                and k not in _RESUME_FREE and made[k] != saved.get(k))
                if fields:
                    differ.append(f"--preset {preset} (it sets {', '.join(fields)} otherwise)")
            if differ:
                raise fail(f"--resume continues {out} with its own options, and these differ "
                           f"from them: {', '.join(differ)}; drop them, or start a new run in "
                           f"another --run-dir (only {', '.join(map(_option, _RESUME_FREE))} "
                           "may change)")
            saved.update({k: overrides[k] for k in _RESUME_FREE if k in overrides})
            cfg = PoetConfig.model_validate(saved)
        else:
            cfg = (PoetConfig.quick(**overrides) if preset == "quick"
                   else PoetConfig(**overrides))
    except ValueError as exc:  # pydantic's error, told in the CLI's option names
        raise fail(_config_error(exc)) from None
    run = PoetRun(cfg, out, resume=resume)
    for w in run.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    display = _Display(cfg.iterations)
    try:
        if quiet:
            run.run()
        else:
            with live_display(display) as live:
                def on_line(line: dict[str, Any]) -> None:
                    display.update(line)
                    live.refresh()

                run.run(on_line)
    finally:
        run.close()
    build_report(out, gifs=cfg.gifs)  # the run just checkpointed: every plot
    _summary(out)
    console.print(f"run directory: {out} (metrics.jsonl, events.jsonl, plots/, gifs/, "
                  "tensorboard/)")
