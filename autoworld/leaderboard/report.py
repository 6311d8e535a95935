"""The leaderboard report, rebuilt from the store alone: aggregates per method, a breakdown by
taxonomy class, the world x method matrix, the probability of improvement between methods and
performance profiles; rendered as rich tables, Markdown, CSV or JSON, and plotted as PNG.

Every text format is made from the same list of :class:`TextTable` (numbers formatted once), so
the table, Markdown and CSV outputs show identical numbers, and the JSON holds those numbers at
full precision.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from autoworld.errors import AutoworldError
from autoworld.leaderboard.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_REPS,
    GainByWorlds,
    Interval,
    Profile,
    bootstrap_ci,
    gains_by_world_count,
    performance_profile,
    probability_of_improvement,
)
from autoworld.leaderboard.store import RunRecord

Metric = Literal["score_opt", "score_random"]
Format = Literal["table", "md", "csv", "json"]
TagsOf = Callable[[str], dict[str, str]]

METRIC_LABELS: dict[str, str] = {
    "score_opt": "R / R_opt",
    "score_random": "(R - R_random) / (R_opt - R_random)",
}
PROFILE_TAUS = (0.25, 0.5, 0.75, 0.9, 1.0)  # thresholds shown in the profile table
DIGITS = 3

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class MethodSummary(BaseModel):
    """Aggregate score of one method over every world it ran on."""

    model_config = _FROZEN
    method: str = Field(description="Learning-method name.")
    worlds: int = Field(description="Number of worlds with at least one run.")
    runs: int = Field(description="Number of runs (worlds x seeds).")
    iqm: Interval = Field(description="Interquartile mean with its 95% stratified-bootstrap CI.")
    mean: Interval = Field(description="Mean with its 95% stratified-bootstrap CI.")
    spent: float | None = Field(None, description="Mean env-steps spent per run as a fraction "
                                "of the budget (None when no run recorded it).")
    spent_runs: int = Field(0, description="Runs that recorded their env-steps (what ``spent`` "
                            "averages); stores written before runs recorded them have none.")


class ClassSummary(BaseModel):
    """Aggregate score of one method on the worlds of one taxonomy class."""

    model_config = _FROZEN
    method: str = Field(description="Learning-method name.")
    axis: str = Field(description="Taxonomy axis (reward, observation, semantics, dynamics).")
    value: str = Field(description="Class on that axis, e.g. partial.")
    worlds: int = Field(description="Number of worlds of this class the method ran on.")
    iqm: Interval = Field(description="IQM with its 95% stratified-bootstrap CI.")
    mean: Interval = Field(description="Mean with its 95% stratified-bootstrap CI.")


class Cell(BaseModel):
    """One world x method cell: the mean score over seeds."""

    model_config = _FROZEN
    world: str = Field(description="World name.")
    method: str = Field(description="Learning-method name.")
    seeds: int = Field(description="Number of finished seeds.")
    mean: float = Field(description="Mean score over the seeds.")


class Improvement(BaseModel):
    """P(X > Y) on the worlds both methods ran on."""

    model_config = _FROZEN
    x: str = Field(description="Method X.")
    y: str = Field(description="Method Y.")
    worlds: int = Field(description="Number of shared worlds averaged over.")
    probability: Interval = Field(description="P(X > Y) with its 95% bootstrap CI.")


class Note(BaseModel):
    """A note carried by the runs of one method on one world (e.g. BC without demonstrations)."""

    model_config = _FROZEN
    method: str = Field(description="Learning-method name.")
    world: str = Field(description="World name.")
    runs: int = Field(description="Finished runs with this note.")
    note: str = Field(description="The note.")


class UpperBound(BaseModel):
    """AutoEnv's "learning upper bound": the best single method against the best method of each
    world chosen in hindsight, on the worlds every method ran on (means over seeds)."""

    model_config = _FROZEN
    worlds: int = Field(description="Worlds every method ran on (the ones compared).")
    best_fixed_method: str = Field(description="The method with the highest mean score.")
    best_fixed_score: float = Field(description="Its mean score over those worlds.")
    upper_bound_score: float = Field(description="Mean over the worlds of the best method's "
                                     "score there.")
    best_method: dict[str, str] = Field(description="world -> the method best there.")
    gains: list[GainByWorlds] = Field(description="Gain over the initial policy vs number of "
                                      "worlds (empty when runs lack initial scores).")


class Leaderboard(BaseModel):
    """Everything the leaderboard shows, computed from the stored runs."""

    model_config = _FROZEN
    metric: Metric = Field(description="Which normalized score is aggregated.")
    steps: int | None = Field(None, description="Env-step budget of every run shown (runs "
                              "at other budgets are left out); None when there are none.")
    reps: int = Field(description="Bootstrap replicates.")
    confidence: float = Field(description="Confidence level of the intervals.")
    seed: int = Field(description="Seed of the bootstrap generator.")
    methods: list[str] = Field(description="Methods, best IQM first.")
    worlds: list[str] = Field(description="Worlds, sorted.")
    summary: list[MethodSummary] = Field(description="Per method, best IQM first.")
    by_class: list[ClassSummary] = Field(description="Per method and taxonomy class.")
    matrix: list[Cell] = Field(description="World x method mean scores.")
    improvement: list[Improvement] = Field(description="P(X > Y) for every ordered pair.")
    profiles: dict[str, Profile] = Field(description="Performance profile per method.")
    sampled_worlds: list[str] = Field(default_factory=list, description="Worlds with "
                                      "stochastic dynamics: R is a Monte-Carlo mean there, "
                                      "so R / R_opt can exceed 1 by sampling noise (marked ~ "
                                      "in the tables).")
    inexact_worlds: list[str] = Field(default_factory=list, description="Worlds whose runs "
                                      "are normalized by an R_opt that is not exact (the "
                                      "runs' bound_flag); marked with a dagger in the tables.")
    notes: list[Note] = Field(default_factory=list, description="Notes the runs carry, per "
                              "method and world (what a reader of their scores should know).")
    settings: list[str] = Field(default_factory=list, description="The (envs, device) the "
                                "runs shown were trained with, where recorded: more than one "
                                "means a table mixes training settings.")
    upper_bound: UpperBound | None = Field(None, description="Best fixed method against the "
                                           "per-world best (two methods or more).")


class TextTable(BaseModel):
    """A titled table of already formatted cells (what every text format renders)."""

    model_config = _FROZEN
    title: str = Field(description="Table title.")
    columns: list[str] = Field(description="Column headers.")
    rows: list[list[str]] = Field(description="Formatted cells, one list per row.")
    keys: int = Field(1, ge=0, description="Leading columns that name a row (repeated in each "
                      "part when a table too wide for the console is split).")
    caption: str | None = Field(None, description="A line under the table (table and md).")


# -- building --------------------------------------------------------------------------------


@cache
def catalogue_tags(world: str) -> dict[str, str]:
    """Taxonomy classes of a catalogue world, arm world or spec path; ``unknown`` when it
    cannot be loaded, so that a store stays readable after a world leaves the catalogue."""
    from autoworld.envs.catalogue import load_world
    from autoworld.errors import AutoworldError
    from autoworld.learners.arm_methods import arm_world_arg
    from autoworld.taxonomy import AXES, arm_tags, tags

    for load, tag in ((load_world, tags), (arm_world_arg, arm_tags)):  # grid, then arm names
        try:
            return tag(load(world))
        except (AutoworldError, OSError, ValueError):
            continue
    return dict.fromkeys(AXES, "unknown")


def _strata(by_world: dict[str, list[float]], worlds: Sequence[str]) -> list[np.ndarray]:
    return [np.asarray(by_world[w], dtype=np.float64) for w in worlds]


def build_leaderboard(
    runs: Sequence[RunRecord],
    metric: Metric = "score_opt",
    reps: int = DEFAULT_REPS,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    tags_of: TagsOf | None = None,
    steps: int | None = None,
) -> Leaderboard:
    """Aggregate finished ``runs`` (runs without a value for ``metric`` are left out) of one
    env-step budget: ``steps``, or the only budget they hold. Runs at different budgets are
    not seeds of one cell, so a store with several budgets needs ``steps`` named."""
    tags_of = tags_of or catalogue_tags
    steps = select_budget(runs, steps)
    runs = [r for r in runs if r.steps == steps]
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    initial: dict[str, dict[str, list[float | None]]] = defaultdict(lambda: defaultdict(list))
    noted: dict[tuple[str, str, str], int] = defaultdict(int)
    inexact: set[str] = set()
    spent: dict[str, list[float]] = defaultdict(list)
    settings: set[str] = set()
    for run in runs:
        value = getattr(run, metric)
        if run.status == "finished" and value is not None and np.isfinite(value):
            scores[run.method][run.world].append(float(value))
            if run.env_steps is not None:
                spent[run.method].append(run.env_steps / run.steps)
            if run.num_envs is not None:  # a method that trains nothing records no envs
                settings.add(f"{run.num_envs} envs on {run.device or '?'}")
            if run.bound_flag:
                inexact.add(run.world)
            initial[run.method][run.world].append(run.initial_score)
            if run.note:
                noted[(run.method, run.world, run.note)] += 1
    ci = {"reps": reps, "confidence": confidence, "seed": seed}

    summary = []
    for method, by_world in scores.items():
        worlds = sorted(by_world)
        strata = _strata(by_world, worlds)
        summary.append(MethodSummary(
            method=method, worlds=len(worlds), runs=sum(s.size for s in strata),
            iqm=bootstrap_ci(strata, "iqm", **ci), mean=bootstrap_ci(strata, "mean", **ci),
            spent=float(np.mean(spent[method])) if spent[method] else None,
            spent_runs=len(spent[method]),
        ))
    summary.sort(key=lambda s: (-s.iqm.point, s.method))
    methods = [s.method for s in summary]
    all_worlds = sorted({w for by_world in scores.values() for w in by_world})

    world_tags = {w: tags_of(w) for w in all_worlds}
    by_class = []
    for method in methods:
        classes: dict[tuple[str, str], list[str]] = defaultdict(list)
        for w in sorted(scores[method]):
            for axis, value in world_tags[w].items():
                classes[(axis, value)].append(w)
        for (axis, value), worlds in sorted(classes.items()):
            strata = _strata(scores[method], worlds)
            by_class.append(ClassSummary(
                method=method, axis=axis, value=value, worlds=len(worlds),
                iqm=bootstrap_ci(strata, "iqm", **ci), mean=bootstrap_ci(strata, "mean", **ci),
            ))

    matrix = [
        Cell(world=w, method=m, seeds=len(scores[m][w]), mean=float(np.mean(scores[m][w])))
        for w in all_worlds for m in methods if w in scores[m]
    ]

    improvement = []
    for x in methods:
        for y in methods:
            shared = sorted(set(scores[x]) & set(scores[y]))
            if x == y or not shared:
                continue
            improvement.append(Improvement(
                x=x, y=y, worlds=len(shared),
                probability=probability_of_improvement(
                    _strata(scores[x], shared), _strata(scores[y], shared), **ci),
            ))

    taus = np.union1d(np.linspace(0.0, 1.0, 41), PROFILE_TAUS)
    profiles = {
        m: performance_profile(_strata(scores[m], sorted(scores[m])), taus, **ci) for m in methods
    }
    notes = [Note(method=m, world=w, runs=n, note=text)
             for (m, w, text), n in sorted(noted.items())]
    return Leaderboard(metric=metric, steps=steps, reps=reps, confidence=confidence, seed=seed,
                       methods=methods, worlds=all_worlds, summary=summary, by_class=by_class,
                       matrix=matrix, improvement=improvement, profiles=profiles,
                       inexact_worlds=sorted(inexact), notes=notes, settings=sorted(settings),
                       sampled_worlds=[w for w in all_worlds
                                       if world_tags[w].get("dynamics") == "stochastic"],
                       upper_bound=_upper_bound(scores, initial, methods, metric, seed))


class BudgetError(AutoworldError, ValueError):
    """The runs asked for hold no budget, or several, and none was named."""


def select_budget(runs: Sequence[RunRecord], steps: int | None) -> int | None:
    """The env-step budget a leaderboard of ``runs`` shows: ``steps`` when given (it must be
    one the finished runs hold), else the only budget of the finished runs (None: no finished
    run at all). Several budgets and no ``steps`` raise ``BudgetError`` listing them."""
    counts: dict[int, int] = defaultdict(int)
    for r in runs:
        if r.status == "finished":
            counts[r.steps] += 1
    held = ", ".join(f"{n:,} ({counts[n]} runs)" for n in sorted(counts))
    if steps is not None:
        if steps not in counts:
            raise BudgetError(f"--steps {steps}: no finished run at that budget; the store "
                              f"holds {held or 'no finished run'}")
        return steps
    if len(counts) > 1:
        raise BudgetError(f"the store holds runs at {len(counts)} step budgets: {held}; runs "
                          "at different budgets are not comparable seeds, so name one with "
                          "--steps N")
    return next(iter(counts), None)


def _upper_bound(scores: dict[str, dict[str, list[float]]],
                 initial: dict[str, dict[str, list[float | None]]], methods: list[str],
                 metric: Metric, seed: int) -> UpperBound | None:
    """The best fixed method against the per-world best, on the worlds every method ran on;
    gains over the initial policy when every run there reports its initial R / R_opt."""
    worlds = sorted(set.intersection(*(set(scores[m]) for m in methods))) if methods else []
    if len(methods) < 2 or not worlds:
        return None
    S = np.array([[np.mean(scores[m][w]) for m in methods] for w in worlds])  # (W, M)
    best = int(np.argmax(S.mean(0)))  # ties: the earlier (higher IQM) method
    gains: list[GainByWorlds] = []
    starts = [x for m in methods for w in worlds for x in initial[m][w]]
    if metric == "score_opt" and all(x is not None and np.isfinite(x) for x in starts):
        I0 = np.array([[np.mean(initial[m][w]) for m in methods] for w in worlds])
        gains = gains_by_world_count(S - I0, seed=seed)
    return UpperBound(worlds=len(worlds), best_fixed_method=methods[best],
                      best_fixed_score=float(S.mean(0)[best]),
                      upper_bound_score=float(S.max(1).mean()),
                      best_method={w: methods[int(np.argmax(S[i]))]
                                   for i, w in enumerate(worlds)},
                      gains=gains)


# -- text tables -----------------------------------------------------------------------------


def fmt(x: float) -> str:
    """The one number format of every text output."""
    return f"{x:.{DIGITS}f}"


INEXACT_MARK = "\u2020"  # dagger: the world's R_opt is not exact
SAMPLED_MARK = "~"  # stochastic dynamics: R / R_opt is a sampled estimate (can exceed 1)


def _marks(lb: Leaderboard, world: str) -> str:
    """A world's marks (see the world x method table's caption), "" for none."""
    return (INEXACT_MARK if world in lb.inexact_worlds else "") + (
        SAMPLED_MARK if world in lb.sampled_worlds else "")


def _marked(lb: Leaderboard, world: str) -> str:
    """A world's name with its marks (the heat map's labels)."""
    marks = _marks(lb, world)
    return f"{world} {marks}" if marks else world


def text_tables(lb: Leaderboard) -> list[TextTable]:
    """The report as formatted tables; table, md and csv all render exactly these cells."""
    label = METRIC_LABELS[lb.metric]
    pct = f"{lb.confidence:.0%}"
    single = [s.method for s in lb.summary if s.runs == s.worlds]
    summary = TextTable(
        title=f"Methods ({label}; IQM and mean with {pct} stratified-bootstrap CIs"
              + (f"; {lb.steps:,} env steps per run)" if lb.steps else ")"),
        columns=["method", "worlds", "runs", "spent", "IQM", "IQM lo", "IQM hi", "mean",
                 "mean lo", "mean hi"],
        rows=[[s.method, str(s.worlds), str(s.runs), "-" if s.spent is None else fmt(s.spent),
               fmt(s.iqm.point), fmt(s.iqm.lo), fmt(s.iqm.hi), fmt(s.mean.point),
               fmt(s.mean.lo), fmt(s.mean.hi)]
              for s in lb.summary],
        keys=4,  # split on a narrow console: the IQM columns, then the mean columns
        caption=_summary_caption(lb, single),
    )
    by_class = TextTable(
        title="By taxonomy class",
        columns=["method", "axis", "class", "worlds", "IQM", "IQM lo", "IQM hi", "mean"],
        rows=[[c.method, c.axis, c.value, str(c.worlds), fmt(c.iqm.point), fmt(c.iqm.lo),
               fmt(c.iqm.hi), fmt(c.mean.point)] for c in lb.by_class],
        keys=3,
    )
    cells = {(c.world, c.method): c for c in lb.matrix}
    inexact = set(lb.inexact_worlds)
    notes = []
    if inexact:
        notes.append(f"{INEXACT_MARK} R_opt is not exact there: a certified upper bound on a "
                     "grid world (the oracle's state space was over its cap; R / R_opt is then "
                     "conservative), the scripted expert's return on an arm world")
    if lb.sampled_worlds:
        notes.append(f"{SAMPLED_MARK} stochastic dynamics: R is a mean over sampled episodes "
                     "and R_opt the exact expected optimum, so R / R_opt can exceed 1 by "
                     "sampling noise")
    # the marks in a column of their own, so the world column keeps the names a reader of the
    # csv joins on
    marked = bool(notes)
    matrix = TextTable(
        title="World x method (mean over seeds)",
        columns=["world", *(["marks"] if marked else []), *lb.methods],
        rows=[[w, *([_marks(lb, w)] if marked else []),
               *(fmt(cells[(w, m)].mean) if (w, m) in cells else "-" for m in lb.methods)]
              for w in lb.worlds],
        caption="; ".join(notes) or None,
    )
    improvement = TextTable(
        title=f"Probability of improvement P(X > Y) ({pct} CI)",
        columns=["X", "Y", "worlds", "P(X > Y)", "lo", "hi"],
        rows=[[i.x, i.y, str(i.worlds), fmt(i.probability.point), fmt(i.probability.lo),
               fmt(i.probability.hi)] for i in lb.improvement],
        keys=2,
    )
    profile_cols = [f"> {t:g}" for t in PROFILE_TAUS]
    profile_rows = []
    for m in lb.methods:
        prof = lb.profiles[m]
        taus = np.asarray(prof.taus)
        picked = [prof.fraction[int(np.argmin(np.abs(taus - t)))] for t in PROFILE_TAUS]
        profile_rows.append([m, *(fmt(v) for v in picked)])
    profile = TextTable(title="Performance profile (fraction of runs with score > tau)",
                        columns=["method", *profile_cols], rows=profile_rows)
    tables = [summary, by_class, matrix, improvement, profile, *_upper_bound_tables(lb)]
    if lb.notes:
        # one row per (world, note): the methods that share it (BC and BC+PPO) side by side
        grouped: dict[tuple[str, str], list[Note]] = defaultdict(list)
        for n in lb.notes:
            grouped[(n.world, n.note)].append(n)
        tables.append(TextTable(title="Notes (scores above that include these runs)",
                                columns=["method", "world", "runs", "note"],
                                rows=[[", ".join(n.method for n in group), world,
                                       str(sum(n.runs for n in group)), note]
                                      for (world, note), group in grouped.items()]))
    return tables


def _summary_caption(lb: Leaderboard, single: list[str]) -> str | None:
    """The line under the methods table: what ``spent`` means and covers, mixed training
    settings, and methods whose intervals have no width (one run per world)."""
    notes = []
    if any(s.spent is not None for s in lb.summary):
        notes.append("spent: mean env-steps a run's own policies took to learn, as a fraction "
                     "of the budget (no method passes it; BC and language agents take none)")
    partial = ", ".join(f"{s.method} {s.spent_runs} of {s.runs}" for s in lb.summary
                        if 0 < s.spent_runs < s.runs)
    if partial:
        notes.append(f"spent covers only the runs that recorded it ({partial}); runs written "
                     "before budgets were caps rounded them up to whole rollouts or generations")
    if len(lb.settings) > 1:
        notes.append(f"the runs were trained with different settings "
                     f"({'; '.join(lb.settings)}): scores of one method may differ between them")
    if single:
        notes.append(f"{', '.join(single)}: one run per world, so the intervals have no width "
                     "(the stratified bootstrap resamples the runs within each world; run 2 or "
                     "more seeds)")
    return "; ".join(notes) or None


def _upper_bound_tables(lb: Leaderboard) -> list[TextTable]:
    """The learning-upper-bound tables (none with fewer than two methods)."""
    ub = lb.upper_bound
    if ub is None:
        return []
    wins: dict[str, int] = defaultdict(int)
    for m in ub.best_method.values():
        wins[m] += 1
    tables = [TextTable(
        title=f"Learning upper bound ({ub.worlds} worlds every method ran on, mean over seeds)",
        columns=["selection", "mean score"],
        rows=[[f"best fixed method: {ub.best_fixed_method}", fmt(ub.best_fixed_score)],
              ["best method per world, in hindsight", fmt(ub.upper_bound_score)]],
        caption="worlds where each method is best (a tie goes to the higher IQM): " + ", ".join(
            f"{m} {wins[m]}" for m in lb.methods if wins[m]),
    )]
    if ub.gains:
        tables.append(TextTable(
            title="Gain over the initial policy vs number of worlds (subsets of worlds)",
            columns=["worlds", "subsets", "best fixed method", "best per world"],
            rows=[[str(g.worlds), str(g.subsets), fmt(g.best_fixed_gain),
                   fmt(g.upper_bound_gain)] for g in ub.gains],
            caption="AutoEnv's finding: the best fixed method's gain shrinks as worlds are "
                    "added while the per-world best keeps more",
        ))
    return tables


def to_markdown(tables: Sequence[TextTable]) -> str:
    parts = []
    for t in tables:
        lines = [f"### {t.title}", "", "| " + " | ".join(t.columns) + " |",
                 "|" + "|".join("---" for _ in t.columns) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in t.rows]
        if t.caption:
            lines += ["", f"*{t.caption}*"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def to_csv(tables: Sequence[TextTable]) -> str:
    """One tidy CSV: ``table,row,column,value`` (row numbers start at 0 within a table)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["table", "row", "column", "value"])
    for t in tables:
        for i, row in enumerate(t.rows):
            for col, value in zip(t.columns, row, strict=True):
                writer.writerow([t.title, i, col, value])
    return buf.getvalue()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == "-"
    return True


def rich_table(t: TextTable, columns: Sequence[int] | None = None, part: str = ""):  # noqa: ANN201
    """A rich ``Table`` of ``t`` (only the ``columns`` indices, when given)."""
    from rich.table import Table

    cols = list(range(len(t.columns))) if columns is None else list(columns)
    table = Table(title=t.title + part, title_justify="left", caption=t.caption,
                  caption_justify="left")
    for i in cols:
        numeric = bool(t.rows) and all(_is_number(row[i]) for row in t.rows)
        # numbers keep their full width (headers may wrap); text folds when space is short
        widest = max((len(row[i]) for row in t.rows), default=1)
        table.add_column(t.columns[i], justify="right" if numeric else "left",
                         min_width=widest if numeric or i == 0 else None, overflow="fold")
    for row in t.rows:
        table.add_row(*(row[i] for i in cols))
    return table


def rich_tables(tables: Sequence[TextTable]) -> list:
    """rich ``Table`` objects for the console, one per table."""
    return [rich_table(t) for t in tables]


def _min_width(console, table) -> int:  # noqa: ANN001
    """The narrowest ``table`` renders without cutting a number, whatever the console's width."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(1 << 14), table).minimum


def fit_tables(console, t: TextTable) -> list:  # noqa: ANN001 - rich Console
    """``t`` as rich tables no wider than the console: the whole table when it fits, else its
    columns in the fewest parts of about equal size that fit, each repeating the key columns
    (the world x method matrix on an 80-column terminal, say)."""
    whole = rich_table(t)
    if _min_width(console, whole) <= console.width or len(t.columns) <= t.keys + 1:
        return [whole]
    keys = list(range(t.keys))
    rest = list(range(t.keys, len(t.columns)))
    for n in range(2, len(rest) + 1):
        parts = [list(p) for p in np.array_split(rest, n)]
        tables = [rich_table(t, keys + cols, f" ({k + 1}/{n})") for k, cols in enumerate(parts)]
        for table in tables[:-1]:  # the caption once, under the last part
            table.caption = None
        if all(_min_width(console, table) <= console.width for table in tables):
            break
    return tables


def render(lb: Leaderboard, fmt_name: Format) -> str:
    """The report as text in ``fmt_name`` (``table`` renders the rich tables to plain text)."""
    if fmt_name == "json":
        return lb.model_dump_json(indent=2) + "\n"
    tables = text_tables(lb)
    if fmt_name == "md":
        return to_markdown(tables)
    if fmt_name == "csv":
        return to_csv(tables)
    from rich.console import Console

    console = Console(file=io.StringIO(), width=100, color_system=None, highlight=False)
    print_tables(console, tables)
    return console.file.getvalue()  # type: ignore[attr-defined]


def print_tables(console, tables: Sequence[TextTable]) -> None:  # noqa: ANN001 - rich Console
    """Print the tables on ``console``: numbers are never cut, and a table wider than the
    console is split into parts by columns (``fit_tables``)."""
    from rich.text import Text

    for t in tables:
        for table in fit_tables(console, t):
            if table.title and _min_width(console, table) < len(str(table.title)):
                # a narrow part: its title on a line of its own rather than wrapped
                console.print(Text(str(table.title), style="italic"))
                table.title = None
            console.print(table)


# -- plots -----------------------------------------------------------------------------------


def _figure(width: float, height: float):  # noqa: ANN202 - matplotlib types stay lazy
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    """Write the PNG with the project's atomic writer (no half-written file ever appears)."""
    from autoworld.atomic import atomic_write

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write(path, buf.getvalue())


def plot_intervals(lb: Leaderboard, path: Path) -> Path:
    """IQM and mean per method with their CIs (rliable's interval-estimate plot)."""
    n = max(len(lb.methods), 1)
    fig = _figure(9, 1.2 + 0.45 * n)
    order = list(reversed(lb.summary))  # best on top
    for k, stat in enumerate(("iqm", "mean")):
        ax = fig.add_subplot(1, 2, k + 1)
        for i, s in enumerate(order):
            iv: Interval = getattr(s, stat)
            ax.barh(i, iv.hi - iv.lo, left=iv.lo, height=0.6, color=f"C{i % 10}", alpha=0.75)
            ax.plot([iv.point, iv.point], [i - 0.3, i + 0.3], color="black", linewidth=1.5)
        ax.set_yticks(range(len(order)), [s.method for s in order] if k == 0 else [""] * len(order))
        ax.set_title("IQM" if stat == "iqm" else "Mean")
        ax.set_xlabel(METRIC_LABELS[lb.metric])
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_profiles(lb: Leaderboard, path: Path) -> Path:
    """Performance profiles: fraction of runs with score > tau, with bootstrap bands."""
    fig = _figure(6.5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for i, m in enumerate(lb.methods):
        p = lb.profiles[m]
        ax.plot(p.taus, p.fraction, color=f"C{i % 10}", label=m)
        ax.fill_between(p.taus, p.lo, p.hi, color=f"C{i % 10}", alpha=0.2)
    ax.set_xlabel(f"score threshold tau ({METRIC_LABELS[lb.metric]})")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if lb.methods:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def plot_improvement(lb: Leaderboard, path: Path) -> Path:
    """Probability of improvement as a method x method heat map, P(row > column)."""
    n = len(lb.methods)
    grid = np.full((n, n), np.nan)
    index = {m: i for i, m in enumerate(lb.methods)}
    for imp in lb.improvement:
        grid[index[imp.x], index[imp.y]] = imp.probability.point
    fig = _figure(2.5 + 0.7 * n, 2.0 + 0.6 * n)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="RdBu")
    for i in range(n):
        for j in range(n):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize="small")
    ax.set_xticks(range(n), lb.methods, rotation=45, ha="right")
    ax.set_yticks(range(n), lb.methods)
    ax.set_xlabel("Y")
    ax.set_ylabel("X")
    ax.set_title("P(X > Y)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return _save(fig, path)


def plot_matrix(lb: Leaderboard, path: Path) -> Path:
    """The world x method matrix as a heat map: mean score over seeds, methods best IQM first
    (blue above 0, red below; a blank cell has no run)."""
    cells = {(c.world, c.method): c.mean for c in lb.matrix}
    grid = np.array([[cells.get((w, m), np.nan) for m in lb.methods] for w in lb.worlds])
    finite = grid[np.isfinite(grid)]
    bound = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    rows, cols = grid.shape
    fig = _figure(3.0 + 0.75 * cols, 1.6 + 0.3 * rows)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(grid, vmin=-bound, vmax=bound, cmap="RdBu", aspect="auto")
    for i in range(rows):
        for j in range(cols):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(grid[i, j]) > 0.6 * bound else "black")
    ax.set_xticks(range(cols), lb.methods, rotation=45, ha="right")
    ax.set_yticks(range(rows), [_marked(lb, w) for w in lb.worlds], fontsize=8)
    legend = ([f"{INEXACT_MARK}: R_opt not exact"] if lb.inexact_worlds else []) + (
        [f"{SAMPLED_MARK}: stochastic, can exceed 1"] if lb.sampled_worlds else [])
    ax.set_title(f"{METRIC_LABELS[lb.metric]}, mean over seeds"
                 + (f"\n({'; '.join(legend)})" if legend else ""))
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    return _save(fig, path)


def plot_gains(lb: Leaderboard, path: Path) -> Path:
    """AutoEnv's learning-upper-bound figure: the gain over the initial policy of the best fixed
    method and of the per-world best, against the number of worlds."""
    gains = lb.upper_bound.gains if lb.upper_bound is not None else []
    fig = _figure(5.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    n = [g.worlds for g in gains]
    ax.plot(n, [g.best_fixed_gain for g in gains], "o-", label="best fixed method")
    ax.plot(n, [g.upper_bound_gain for g in gains], "s-", label="best method per world")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(n, [str(k) for k in n])
    ax.set_xlabel("worlds")
    ax.set_ylabel(f"gain over the initial policy ({METRIC_LABELS[lb.metric]})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def write_plots(lb: Leaderboard, directory: str | Path) -> list[Path]:
    """Write the PNG plots into ``directory`` (created) and return their paths: intervals,
    profiles, P(X > Y), the world x method heat map, and the gains by number of worlds when the
    runs carry their initial scores."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        plot_intervals(lb, out / "interval_estimates.png"),
        plot_profiles(lb, out / "performance_profiles.png"),
        plot_improvement(lb, out / "probability_of_improvement.png"),
        plot_matrix(lb, out / "world_method_scores.png"),
    ]
    if lb.upper_bound is not None and lb.upper_bound.gains:
        paths.append(plot_gains(lb, out / "gain_by_worlds.png"))
    return paths
