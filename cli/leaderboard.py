"""`autoworld leaderboard`: tables, exports and plots rebuilt from the store alone."""

from __future__ import annotations

from pathlib import Path

import typer

from autoworld.cli.common import console, fail, handle_errors

DEFAULT_DB = Path("leaderboard.db")
FORMATS = ("table", "md", "csv", "json")
METRICS = {"opt": "score_opt", "random": "score_random"}


@handle_errors
def leaderboard_command(
    db: Path = typer.Option(DEFAULT_DB, "--db", help="SQLite leaderboard file."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, md, csv or json."),
    plot: Path | None = typer.Option(None, "--plot", help="Write PNG plots into this folder."),
    metric: str = typer.Option("opt", "--metric",
                               help="opt: R / R_opt; random: (R - R_rand) / (R_opt - R_rand)."),
    reps: int = typer.Option(2000, "--reps", min=100, help="Bootstrap replicates."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the bootstrap."),
    steps: int | None = typer.Option(None, "--steps", "-n", min=1,
                                     help="Env-step budget to show, when the store holds runs "
                                     "at several (runs at different budgets are never mixed)."),
) -> None:
    """Per method: IQM and mean with stratified-bootstrap 95% CIs, a breakdown by taxonomy
    class, the world x method matrix, probability of improvement and performance profiles."""
    from autoworld.leaderboard.report import build_leaderboard, print_tables, render, text_tables
    from autoworld.leaderboard.report import write_plots as write_plot_files
    from autoworld.leaderboard.store import RunStore

    if fmt not in FORMATS:
        raise fail(f"--format: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if metric not in METRICS:
        raise fail(f"--metric: unknown metric {metric!r}; use opt or random")
    if not db.is_file():
        raise fail(f"--db: no leaderboard at {db}; fill one with `autoworld bench --db {db}`")
    runs = RunStore(db).runs()
    if not runs:
        raise fail(f"{db} holds no finished runs yet; run `autoworld bench --db {db}`", 1)
    lb = build_leaderboard(runs, metric=METRICS[metric], reps=reps, seed=seed,
                           steps=steps)  # type: ignore[arg-type]
    if fmt == "table":
        print_tables(console, text_tables(lb))
    else:
        typer.echo(render(lb, fmt), nl=False)  # type: ignore[arg-type]
    if plot is not None:
        paths = write_plot_files(lb, plot)
        (console if fmt == "table" else _stderr()).print(
            "plots: " + ", ".join(str(p) for p in paths), soft_wrap=True)


def _stderr():  # noqa: ANN202
    from autoworld.cli.common import err_console

    return err_console
