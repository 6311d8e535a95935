"""`autoworld embodiment`: run one of the arm-family experiments E1, E2, E3."""

from __future__ import annotations

from pathlib import Path

import typer

from autoworld.cli.common import check_device, console, fail, handle_errors


@handle_errors
def embodiment(
    experiment: str = typer.Argument(..., help="E1 (task diversity), E2 (multi-embodiment "
                                     "pretraining) or E3 (action-rate debiasing)."),
    quick: bool = typer.Option(False, "--quick", help="A few-minute CPU version (fewer tasks, "
                               "smaller data and networks, 2 seeds unless --seeds)."),
    seeds: int = typer.Option(0, "--seeds", "-k", min=0, help="Seeds (0: 5, or 2 with --quick "
                              "or --tiny)."),
    out: Path = typer.Option(Path("runs/embodiment"), "--out", "-o", help="Output folder for "
                             "results.json, results.md and the PNG plots."),
    device: str = typer.Option("cpu", "--device", "-d", help="Torch device (cpu, cuda, ...)."),
    tiny: bool = typer.Option(False, "--tiny", help="Test size: seconds, not meaningful "
                              "numbers."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's "
                                "default; 1 is fastest for small nets on a busy machine)."),
) -> None:
    """Run EXPERIMENT and write results.json, results.md and plots into --out."""
    import torch

    from autoworld.embodiment import EXPERIMENTS, run_experiment

    if experiment.upper() not in EXPERIMENTS:
        raise fail(f"experiment: unknown experiment {experiment!r}; use one of "
                   f"{', '.join(EXPERIMENTS)}")
    if quick and tiny:
        raise fail("--quick and --tiny exclude each other; pick one")
    check_device(device)
    if threads:
        torch.set_num_threads(threads)
    scale = "tiny" if tiny else "quick" if quick else "full"
    result = run_experiment(experiment, scale, seeds or None, out, device,
                            progress=lambda msg: console.print(msg))
    console.print(f"[bold]{result['experiment']}[/bold] ({scale}, {result['seeds']} seeds) in "
                  f"{result['seconds']:.1f}s; results in {out}")
