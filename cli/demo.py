"""`autoworld demo`: several catalogue worlds stepped together in one batched engine."""

from __future__ import annotations

import time

import torch
import typer
from rich.table import Table

from autoworld.cli.common import (
    check_device,
    coloured_ascii,
    console,
    fail,
    grid_world_arg,
    handle_errors,
)


@handle_errors
def demo_command(
    world: list[str] = typer.Option(
        [], "--world", "-w", help="Catalogue world (repeatable); default: the whole catalogue."
    ),
    num_envs: int = typer.Option(1024, "--num-envs", "-n", min=1, max=1_000_000,
                                 help="Envs in the batch (spread over the worlds)."),
    steps: int = typer.Option(200, "--steps", min=1, max=1_000_000,
                              help="Batched steps to take."),
    device: str = typer.Option("cpu", "--device", "-d", help="Torch device: cpu, cuda, cuda:1."),
    levels: int = typer.Option(16, "--levels", min=1, max=512,
                               help="Training levels per world in the batch."),
    seed: int = typer.Option(0, "--seed", min=0, help="Root seed of the engine and actions."),
    threads: int = typer.Option(
        0, "--threads", min=0,
        help="CPU threads for torch (0: torch's default; 1 is faster for small batches).",
    ),
) -> None:
    """Step several catalogue worlds in one batch with random actions and summarize."""
    dev = torch.device(check_device(device))
    previous_threads = torch.get_num_threads()
    if dev.type == "cpu" and threads > 0:
        torch.set_num_threads(threads)
    try:
        _run_demo(world, num_envs, steps, dev, levels, seed)
    finally:
        torch.set_num_threads(previous_threads)


def _run_demo(world: list[str], num_envs: int, steps: int, dev: torch.device, levels: int,
              seed: int) -> None:
    from autoworld.envs.catalogue import list_worlds
    from autoworld.envs.grid.bucketed import make_engine
    from autoworld.envs.grid.engine import NUM_ACTIONS
    from autoworld.envs.grid.levels import bank
    from autoworld.envs.grid.render import render_ascii

    names = list(dict.fromkeys(world)) or list_worlds(generated=False)
    specs = [grid_world_arg(n, "demo") for n in names]
    if num_envs < len(specs):
        raise fail(f"--num-envs: {num_envs} envs cannot cover {len(specs)} worlds; use at least "
                   f"{len(specs)} or fewer --world")

    t0 = time.perf_counter()
    engine = make_engine(specs, num_envs=num_envs, device=dev, seed=seed,
                         banks=[bank(s, "train", size=levels) for s in specs])
    engine.reset()
    build_s = time.perf_counter() - t0

    W = len(specs)
    wid = engine.world_ids
    gen = torch.Generator(device=dev).manual_seed(seed)
    ep_return = torch.zeros(num_envs, device=dev)
    return_sum = torch.zeros(W, device=dev)
    finished = torch.zeros(W, device=dev)
    solved = torch.zeros(W, device=dev)
    with console.status(f"stepping {num_envs} envs of {W} worlds for {steps} steps..."):
        t0 = time.perf_counter()
        for _ in range(steps):
            actions = torch.randint(0, NUM_ACTIONS, (num_envs,), generator=gen, device=dev)
            _, reward, terminated, truncated, _ = engine.step(actions)
            ep_return += reward
            done = (terminated | truncated).float()
            return_sum.index_add_(0, wid, ep_return * done)
            finished.index_add_(0, wid, done)
            solved.index_add_(0, wid, terminated.float())
            ep_return *= 1.0 - done
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        step_s = time.perf_counter() - t0

    envs_per_world = torch.bincount(wid.cpu(), minlength=W).tolist()
    table = Table(title=f"autoworld demo: {W} worlds in one batch on {dev}")
    table.add_column("world", no_wrap=True, style="bold")
    for col in ("envs", "episodes", "terminated", "mean return"):
        table.add_column(col, justify="right", no_wrap=True)
    for i, spec in enumerate(specs):
        n = int(finished[i])
        mean = f"{float(return_sum[i]) / n:.3f}" if n else "-"
        table.add_row(spec.name, str(envs_per_world[i]), str(n), str(int(solved[i])), mean)
    console.print(table)
    sps = num_envs * steps / max(step_s, 1e-9)
    console.print(f"[bold]{num_envs * steps:,}[/bold] env-steps in {step_s:.2f} s = "
                  f"[bold green]{sps:,.0f} steps/s[/bold green] (build {build_s:.2f} s, "
                  f"random actions, {steps} batched steps)")
    if len(specs) > 1:
        _homogeneous_speed(specs[0], num_envs, dev, seed, levels)
    console.print(f"\n[bold]{specs[0].name}[/bold], env 0 now:")
    console.print(coloured_ascii(render_ascii(engine, 0)))


def _homogeneous_speed(spec, num_envs: int, dev: torch.device, seed: int, levels: int) -> None:
    """For contrast: one world alone in a batch of the same size (a mixed batch runs one
    program per component set; see docs/benchmarks.md)."""
    from autoworld.envs.grid.engine import NUM_ACTIONS, GridEngine
    from autoworld.envs.grid.levels import bank

    engine = GridEngine(spec, num_envs=num_envs, device=dev, seed=seed,
                        banks=[bank(spec, "train", size=levels)])
    engine.reset()
    gen = torch.Generator(device=dev).manual_seed(seed)
    steps = 50
    t0 = time.perf_counter()
    for _ in range(steps):
        engine.step(torch.randint(0, NUM_ACTIONS, (num_envs,), generator=gen, device=dev))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    sps = num_envs * steps / max(time.perf_counter() - t0, 1e-9)
    console.print(f"{spec.name} alone, {num_envs} envs: [bold green]{sps:,.0f} steps/s"
                  "[/bold green]")
