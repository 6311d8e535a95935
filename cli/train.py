"""`autoworld train`: train a learning method on a world with a live display."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from autoworld.cli.common import (
    check_device,
    console,
    fail,
    handle_errors,
    live_display,
    load_world_arg,
)


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and x != x) else format(x, spec)


class _Display:
    """The live table: steps, steps/s, training return, validation scores."""

    def __init__(self, world: str, method: str, total: int) -> None:
        self.world, self.method, self.total = world, method, total
        self.train: dict[str, Any] = {}
        self.eval: dict[str, Any] = {}

    def update(self, rec: dict[str, Any]) -> None:
        (self.eval if rec.get("kind") == "eval" else self.train).update(rec)

    def __rich__(self) -> Table:
        t = Table(title=f"{self.method} on {self.world}", show_header=False, min_width=44)
        t.add_column(style="bold")
        t.add_column(justify="right")
        t.add_row("steps", f"{self.train.get('step', 0):,} / {self.total:,}")
        t.add_row("steps/s", _fmt(self.train.get("steps_per_second"), ",.0f"))
        t.add_row("episode return", _fmt(self.train.get("episode_return")))
        t.add_row("entropy", _fmt(self.train.get("entropy")))
        t.add_row("val return", _fmt(self.eval.get("mean_return")))
        t.add_row("val R/R_opt", _fmt(self.eval.get("normalized")))
        t.add_row("val (R-R_rand)/(R_opt-R_rand)", _fmt(self.eval.get("normalized_gain")))
        t.add_row("val success", _fmt(self.eval.get("success")))
        return t


def _check_run_dir(out: Path, method: str, resume: bool) -> None:
    """Nothing is overwritten by accident, and --resume has a run to continue."""
    if resume and method != "ppo":
        raise fail(f"--resume: method {method!r} cannot resume; only ppo runs are resumable "
                   "(drop --resume to start over)")
    if resume and not out.is_dir():
        raise fail(f"--resume: {out} holds no run to continue; drop --resume to start one "
                   "there, or give the --run-dir of the run")
    held = [p.name for p in (out / "checkpoint", out / "result.json") if p.exists()]
    if not resume and held:
        again = "pass --resume to continue it, " if method == "ppo" else ""
        raise fail(f"--run-dir: {out} already holds a run ({', '.join(held)}); {again}choose "
                   "another --run-dir, or delete it to start over")


@handle_errors
def train_command(
    world: str = typer.Argument(..., help="Catalogue world name or spec file (.yaml/.json)."),
    method: str = typer.Option("ppo", "--method", "-m", help="Learning method (see "
                               "`autoworld methods`)."),
    steps: int = typer.Option(200_000, "--steps", "-n", min=1, help="Environment steps."),
    num_envs: int | None = typer.Option(None, "--num-envs", "-b", min=1, help="Parallel envs "
                                        "(default: the config's num_envs for ppo, else 256, "
                                        "or fewer when --steps is below 256 x 32)."),
    seed: int = typer.Option(0, "--seed", "-s", min=0, help="Root seed."),
    device: str = typer.Option("cpu", "--device", "-d", help="Torch device (cpu, cuda, ...)."),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Run directory (default "
                                        "runs/<world>-<method>-s<seed>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run directory's "
                                "last checkpoint."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's "
                                "default; 1 is fastest for small nets on a busy machine)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live display."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML/JSON file of "
                                       "hyper-parameters: PPOConfig fields for ppo, "
                                       "MethodOptions fields (policy, population, ...) for the "
                                       "other methods; see --show-config."),
    sets: list[str] | None = typer.Option(None, "--set", help="Override one field, KEY=VALUE "
                                          "with dotted keys (repeatable), e.g. --set "
                                          "policy.encoding=onehot --set policy.dense_layers=2."),
    show_config: bool = typer.Option(False, "--show-config", help="Print the resolved "
                                     "hyper-parameters as YAML and exit."),
) -> None:
    """Train METHOD on WORLD; metrics.jsonl, TensorBoard and checkpoints go to the run dir.

    Networks and hyper-parameters come from --config and --set, e.g. --set
    policy.encoding=onehot --set policy.dense_layers=2 --set clip_vloss=false --set vf_coef=1.0
    (one-hot input, two dense layers, stable-baselines3's value loss).
    """
    import torch

    from autoworld.learners.overrides import configure, dump_config
    from autoworld.learners.train import available_methods, train

    spec = load_world_arg(world)
    if method not in available_methods():
        raise fail(f"--method: unknown method {method!r}; use one of "
                   f"{', '.join(available_methods())}")
    cfg, options = None, None
    if method == "ppo":
        from autoworld.learners.ppo import PPOConfig

        cfg = configure(PPOConfig, path=config, sets=sets or ())
        if num_envs is not None:
            cfg = configure(PPOConfig, cfg, sets=[f"num_envs={num_envs}"])
    elif config is not None or sets or show_config:
        from autoworld.learners.methods import MethodOptions

        options = configure(MethodOptions, path=config, sets=sets or ())
    if show_config:
        typer.echo(dump_config(cfg if cfg is not None else options), nl=False)
        return
    if threads:
        torch.set_num_threads(threads)
    check_device(device)
    out = run_dir or Path("runs") / f"{spec.name}-{method}-s{seed}"
    _check_run_dir(out, method, resume)
    display = _Display(spec.name, method, steps)
    if quiet:
        result = train(spec, method, steps, num_envs, seed, device, out, resume, config=cfg,
                       options=options)
    else:
        with live_display(display) as live:
            def on_record(rec: dict[str, Any]) -> None:
                display.update(rec)
                live.refresh()

            result = train(spec, method, steps, num_envs, seed, device, out, resume,
                           config=cfg, callback=on_record, options=options)
    console.print(f"[bold]{result.world}[/bold] {result.method}: {result.steps:,} steps in "
                  f"{result.wall_time:.1f}s, R/R_opt {result.score:.3f}, "
                  f"(R-R_rand)/(R_opt-R_rand) {result.normalized_gain:.3f}, "
                  f"success {result.success:.2f}", soft_wrap=True)
    console.print(f"run directory: {out}")
