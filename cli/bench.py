"""`autoworld bench`: fill the leaderboard store with a methods x worlds x seeds grid."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from autoworld.cli.common import check_device, console, fail, handle_errors

DEFAULT_DB = Path("leaderboard.db")


@handle_errors
def bench_command(
    methods: str = typer.Option("all", "--methods", "-m",
                                help="all, or a comma list of method names; llm:MODEL is a "
                                     "language agent served by --llm-base-url, llm-hf:DIR a "
                                     "local Hugging Face model."),
    worlds: str = typer.Option("all", "--worlds", "-w",
                               help="all, or a comma list of names, globs ('*Lava*'), tag:TAG or "
                                    "suite:NAME (suite:core36: the 36-world leaderboard grid)."),
    seeds: int = typer.Option(3, "--seeds", "-k", min=1, help="Seeds per (method, world)."),
    steps: int = typer.Option(100_000, "--steps", "-n", min=1, help="Env-step budget per run."),
    db: Path = typer.Option(DEFAULT_DB, "--db", help="SQLite leaderboard file (created)."),
    backend: str = typer.Option("serial", "--backend", "-b",
                                help="Executor: serial, process or ray."),
    workers: int | None = typer.Option(None, "--workers", min=1,
                                       help="Worker processes (process/ray backends)."),
    device: str = typer.Option("cpu", "--device", help="Torch device for training."),
    num_envs: int | None = typer.Option(None, "--num-envs", min=1,
                                        help="Parallel envs per run (method default if unset)."),
    run_dir: Path | None = typer.Option(None, "--run-dir",
                                        help="Keep each run's directory under this folder."),
    llm_base_url: str | None = typer.Option(
        None, "--llm-base-url", help="OpenAI-compatible endpoint of llm:MODEL methods "
        "(default $AUTOWORLD_LLM_BASE_URL; key from $AUTOWORLD_LLM_API_KEY)."),
    llm_workers: int | None = typer.Option(None, "--llm-workers", min=1, max=256,
                                           help="Concurrent requests per llm:MODEL run."),
    time_limit: float | None = typer.Option(
        None, "--time-limit", min=1,
        help="Seconds: start no run that would end after this (by the mean run of its method "
             "so far; quicker methods' cells fill the end); the "
             "rest stay pending for the next call."),
) -> None:
    """Train every method on every world with every seed and record the scores.

    Resumable: finished cells are skipped and each cell is saved when it finishes. Without
    --num-envs a run uses 256 envs, or fewer when the budget is too small for one rollout of 32
    steps per env.
    """
    from autoworld.leaderboard import bench as bench_lib
    from autoworld.leaderboard.store import RunStore

    if backend not in bench_lib.BACKENDS:
        raise fail(f"--backend: unknown backend {backend!r}; use serial, process or ray")
    check_device(device)
    bench_lib.check_learners()
    method_names = bench_lib.select_methods(methods, bench_lib.available_methods(),
                                            bench_lib.method_families())
    world_names = bench_lib.select_worlds(worlds, bench_lib.available_worlds())
    cells = bench_lib.plan(method_names, world_names, seeds, steps)
    if not cells:  # before the store: no empty database left behind
        raise fail(f"no method of {', '.join(method_names)} runs on a world of "
                   f"{', '.join(world_names[:5])}{' ...' if len(world_names) > 5 else ''}: "
                   "grid methods train on grid worlds, arm methods on arm worlds (arm-bc and "
                   "arm-es on end-effector-delta ones)")
    store = RunStore(db)
    todo = bench_lib.pending(store, cells)
    paired = ("" if len(cells) == len(method_names) * len(world_names) * seeds else
              " (grid methods on grid worlds, arm methods on arm worlds; arm-bc and arm-es "
              "on end-effector-delta worlds)")
    console.print(
        f"bench: {len(method_names)} methods x {len(world_names)} worlds x {seeds} seeds = "
        f"{len(cells)} cells{paired}; {len(cells) - len(todo)} already finished, {len(todo)} "
        f"to run ({backend}) -> {db}", soft_wrap=True
    )
    earlier = sorted({(x["info"].get("num_envs"), x["info"].get("device"))
                      for x in store.sessions()} - {(num_envs, device)}, key=str)
    if earlier and todo:
        was = ", ".join(f"--num-envs {n or 'default'} --device {d}" for n, d in earlier)
        console.print(f"[yellow]warning:[/yellow] earlier calls on {db} ran cells with {was}; "
                      f"this one runs with --num-envs {num_envs or 'default'} --device {device}, "
                      "and a cell is only method x world x seed x steps, so the store will mix "
                      "the settings (use another --db to keep them apart)", soft_wrap=True)
    runner = bench_lib.make_train_runner(
        device=device, num_envs=num_envs, run_root=str(run_dir) if run_dir else None,
        llm_base_url=llm_base_url, llm_workers=llm_workers,
    )
    failed: list[str] = []
    progress = Progress(TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                        TextColumn("{task.description}"),
                        console=console, transient=False)
    with progress:
        task = progress.add_task("", total=len(todo))

        def on_result(record) -> None:  # noqa: ANN001 - a RunRecord
            label = f"{record.method} / {record.world} / seed {record.seed}"
            if record.status == "failed":
                failed.append(f"{label}: {record.error}")
                label += " [red]failed[/red]"
            else:
                label += f" {record.score_opt:.3f}"
            progress.update(task, advance=1, description=label)

        calls_before = len(store.sessions())
        written = bench_lib.run_bench(
            cells, store, runner, backend=backend,  # type: ignore[arg-type]
            workers=workers, on_result=on_result, time_limit=time_limit,
            info={"device": device, "num_envs": num_envs, "steps": steps})
    console.print(f"done: {store.count()} finished runs in {db}; "
                  f"see `autoworld leaderboard --db {db}`")
    sessions = store.sessions()
    if len(sessions) > calls_before:  # this call ran cells: its time, and the grid's so far
        total = sum(float(s["wall_s"]) for s in sessions)
        console.print(f"bench wall time: {float(sessions[-1]['wall_s']):.1f} s this call, "
                      f"{total:.1f} s over the {len(sessions)} call(s) that ran cells "
                      f"({sum(int(s['cells']) for s in sessions)} runs recorded, failed ones "
                      "included)")
    left = len(todo) - len(written)
    if left:
        console.print(f"time limit: {left} cell(s) not started; rerun the same command to "
                      "run them")
    if failed:
        for line in failed[:10]:
            console.print(f"[red]failed[/red] {line}", soft_wrap=True)
        raise fail(f"{len(failed)} cell(s) failed; rerun the same command to retry them", 1)
