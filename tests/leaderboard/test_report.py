"""The leaderboard report: formats agree, plots are PNGs, and the CLI works end to end."""

from __future__ import annotations

import csv
import io
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from autoworld.leaderboard.bench import CellOutcome
from autoworld.leaderboard.report import (
    build_leaderboard,
    fmt,
    render,
    text_tables,
    write_plots,
)
from autoworld.leaderboard.stats import iqm, probability_of_improvement
from autoworld.leaderboard.store import CellKey, RunRecord, RunStore

WORLDS = ["DoorKey-8x8", "Empty-6x6", "IceRink-9x9"]
TAGS = {"DoorKey-8x8": {"observation": "partial", "dynamics": "deterministic"},
        "Empty-6x6": {"observation": "full", "dynamics": "deterministic"},
        "IceRink-9x9": {"observation": "full", "dynamics": "stochastic"}}


def make_runs() -> list[RunRecord]:
    rng = np.random.default_rng(0)
    runs = []
    for m, base in (("ppo", 0.7), ("es", 0.5), ("random", 0.1)):
        for w in WORLDS:
            for s in range(4):
                v = float(np.clip(base + rng.normal(0, 0.15), 0, 1))
                spent = {"ppo": 96 - s, "es": 90 + s}.get(m)  # random has no record of it
                runs.append(RunRecord(method=m, world=w, seed=s, steps=100, score_opt=v,
                                      score_random=v - 0.05, env_steps=spent))
    return runs


@pytest.fixture(scope="module")
def board():
    return build_leaderboard(make_runs(), reps=300, tags_of=TAGS.__getitem__)


def test_aggregates_match_the_statistics(board) -> None:
    runs = make_runs()
    assert board.methods[0] == "ppo" and board.methods[-1] == "random"
    ppo = [r.score_opt for r in runs if r.method == "ppo"]
    top = board.summary[0]
    assert top.iqm.point == pytest.approx(float(iqm(np.array(ppo))))
    assert top.mean.point == pytest.approx(float(np.mean(ppo)))
    assert top.worlds == 3 and top.runs == 12
    assert top.spent == pytest.approx(np.mean([96 - s for s in range(4)]) / 100)
    assert board.summary[-1].method == "random" and board.summary[-1].spent is None
    cell = next(c for c in board.matrix if c.world == "Empty-6x6" and c.method == "es")
    assert cell.mean == pytest.approx(np.mean([r.score_opt for r in runs
                                               if r.method == "es" and r.world == "Empty-6x6"]))
    by = {(c.method, c.axis, c.value): c for c in board.by_class}
    assert by[("ppo", "dynamics", "deterministic")].worlds == 2
    assert by[("ppo", "observation", "partial")].worlds == 1
    imp = next(i for i in board.improvement if i.x == "ppo" and i.y == "es")
    xs = [np.array([r.score_opt for r in runs if r.method == "ppo" and r.world == w])
          for w in WORLDS]
    ys = [np.array([r.score_opt for r in runs if r.method == "es" and r.world == w])
          for w in WORLDS]
    assert imp.probability.point == pytest.approx(probability_of_improvement(xs, ys).point)
    rev = next(i for i in board.improvement if i.x == "es" and i.y == "ppo")
    assert imp.probability.point + rev.probability.point == pytest.approx(1.0)


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d{3}", text)]


def test_formats_agree(board) -> None:
    tables = text_tables(board)
    md = render(board, "md")
    table = render(board, "table")
    rows = list(csv.DictReader(io.StringIO(render(board, "csv"))))
    data = json.loads(render(board, "json"))
    # every formatted cell appears in md and csv, in order, and the rich table shows the same
    expected = [float(v) for t in tables for row in t.rows for v in row if re.fullmatch(
        r"-?\d+\.\d{3}", v)]
    assert _numbers(md) == expected
    assert [float(r["value"]) for r in rows if re.fullmatch(r"-?\d+\.\d{3}", r["value"])] == \
        expected
    assert sorted(_numbers(table)) == sorted(expected)
    # csv cell by cell equals the md table cell by cell
    for t in tables:
        block = md.split(f"### {t.title}\n\n")[1].split("\n\n")[0].splitlines()
        md_rows = [[c.strip() for c in line.strip("|").split("|")] for line in block[2:]]
        assert md_rows == t.rows
        csv_rows = [r for r in rows if r["table"] == t.title]
        assert [r["value"] for r in csv_rows] == [v for row in t.rows for v in row]
    # json holds the same numbers at full precision
    for s in data["summary"]:
        line = next(r for r in tables[0].rows if r[0] == s["method"])
        assert line[3] == ("-" if s["spent"] is None else fmt(s["spent"]))
        assert line[4:10] == [fmt(s["iqm"]["point"]), fmt(s["iqm"]["lo"]), fmt(s["iqm"]["hi"]),
                             fmt(s["mean"]["point"]), fmt(s["mean"]["lo"]),
                             fmt(s["mean"]["hi"])]
        assert re.search(rf"\b{re.escape(s['method'])}\b.*{re.escape(line[4])}", table)
    cell = data["matrix"][0]
    mrow = next(r for r in tables[2].rows if r[0] == cell["world"])
    assert mrow[tables[2].columns.index(cell["method"])] == fmt(cell["mean"])
    for imp in data["improvement"]:
        prow = next(r for r in tables[3].rows if r[:2] == [imp["x"], imp["y"]])
        assert prow[3] == fmt(imp["probability"]["point"])


def test_plots_are_pngs(board, tmp_path: Path) -> None:
    paths = write_plots(board, tmp_path / "plots")
    assert {p.name for p in paths} == {"interval_estimates.png", "performance_profiles.png",
                                       "probability_of_improvement.png",
                                       "world_method_scores.png"}
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
    assert not list((tmp_path / "plots").glob(".*tmp"))


def cli_fake_runner(cell: CellKey) -> CellOutcome:
    v = zlib.crc32(f"{cell.method}/{cell.world}/{cell.seed}".encode()) % 1000 / 1000
    return CellOutcome(score_opt=v, score_random=v / 2, raw_return=v, success=float(v > 0.5))


@pytest.fixture
def fake_learners(monkeypatch: pytest.MonkeyPatch) -> None:
    from autoworld.leaderboard import bench

    monkeypatch.setattr(bench, "check_learners", lambda: None)
    monkeypatch.setattr(bench, "available_methods", lambda: ["alpha", "beta"])
    monkeypatch.setattr(bench, "make_train_runner", lambda **kw: cli_fake_runner)


def test_cli_bench_then_leaderboard(fake_learners, tmp_path: Path) -> None:
    from autoworld.cli.app import app

    db = tmp_path / "lb.db"
    cli = CliRunner()
    args = ["bench", "--methods", "all", "--worlds", "Empty-6x6,*Lava*", "--seeds", "2",
            "--steps", "50", "--db", str(db)]
    first = cli.invoke(app, args)
    assert first.exit_code == 0, first.output
    from autoworld.envs.catalogue import list_worlds

    lava = [w for w in list_worlds() if "Lava" in w]
    n = RunStore(db).count()
    assert n == 2 * 2 * (1 + len(lava))
    assert re.search(rf"bench wall time: [\d.]+ s this call, [\d.]+ s over the 1 call\(s\) "
                     rf"that ran cells \({n} runs recorded, failed ones included\)",
                     " ".join(first.output.split()))
    again = cli.invoke(app, args)
    assert again.exit_code == 0 and f"{n} already finished, 0 to run" in again.output
    assert "bench wall time" not in again.output  # nothing ran
    out = {}
    for f in ("md", "csv", "json"):
        res = cli.invoke(app, ["leaderboard", "--db", str(db), "--format", f, "--reps", "200"])
        assert res.exit_code == 0, res.output
        out[f] = res.output
    data = json.loads(out["json"])
    assert set(data["methods"]) == {"alpha", "beta"} and len(data["worlds"]) == 1 + len(lava)
    assert _numbers(out["md"]) == [float(r["value"]) for r in csv.DictReader(
        io.StringIO(out["csv"])) if re.fullmatch(r"-?\d+\.\d{3}", r["value"])]
    plots = tmp_path / "plots"
    res = cli.invoke(app, ["leaderboard", "--db", str(db), "--reps", "200", "--plot", str(plots)])
    assert res.exit_code == 0, res.output
    assert "IQM" in res.output and len(list(plots.glob("*.png"))) == 4
    # a second budget in the same store: never pooled with the first, picked with --steps
    more = cli.invoke(app, ["bench", "--methods", "alpha", "--worlds", "Empty-6x6", "--seeds",
                            "1", "--steps", "60", "--db", str(db), "--num-envs", "2"])
    assert more.exit_code == 0, more.output
    # other settings than the store's earlier calls: said, since cells do not record them
    assert "warning: earlier calls" in " ".join(more.output.split())
    assert "warning" not in first.output
    res = cli.invoke(app, ["leaderboard", "--db", str(db), "--reps", "200"])
    assert res.exit_code != 0 and "2 step budgets" in res.output and "--steps N" in res.output
    res = cli.invoke(app, ["leaderboard", "--db", str(db), "--reps", "200", "--steps", "60",
                           "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["steps"] == 60 and data["methods"] == ["alpha"]
    assert data["worlds"] == ["Empty-6x6"] and data["summary"][0]["runs"] == 1


def test_cli_errors_are_one_line(fake_learners, tmp_path: Path) -> None:
    from autoworld.cli.app import app

    cli = CliRunner()
    res = cli.invoke(app, ["leaderboard", "--db", str(tmp_path / "none.db")])
    assert res.exit_code == 2 and "autoworld bench" in res.output
    res = cli.invoke(app, ["bench", "--methods", "gamma", "--db", str(tmp_path / "x.db")])
    assert res.exit_code == 2 and "unknown method" in res.output
    res = cli.invoke(app, ["bench", "--worlds", "tag:nope", "--db", str(tmp_path / "x.db")])
    assert res.exit_code == 2 and "matches no world" in res.output


def test_cli_bench_says_when_learners_are_missing(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    import builtins

    from autoworld.cli.app import app

    real_import = builtins.__import__

    def no_train(name, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        if name == "autoworld.learners.train":
            raise ImportError("No module named 'autoworld.learners.train'")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_train)
    res = CliRunner().invoke(app, ["bench", "--db", str(tmp_path / "x.db")])
    assert res.exit_code == 2 and "learners are not available" in res.output


def test_cli_bench_time_limit_leaves_cells_for_the_next_call(fake_learners, tmp_path: Path,
                                                               monkeypatch) -> None:
    """--time-limit: runs of 10 s (fake clock) under a 15 s limit: the first ends at 10 s and a
    second would end at 20 s, so one runs; the CLI says how many cells wait for the next call,
    which runs them."""
    import autoworld.leaderboard.bench as bench
    from autoworld.cli.app import app

    clock = {"now": 0.0}

    def slow_fake(cell):  # noqa: ANN001, ANN202
        clock["now"] += 10.0
        return cli_fake_runner(cell)

    monkeypatch.setattr(bench, "_now", lambda: clock["now"])
    monkeypatch.setattr(bench, "make_train_runner", lambda **kw: slow_fake)
    db = tmp_path / "lb.db"
    args = ["bench", "--methods", "alpha", "--worlds", "Empty-6x6,DoorKey-8x8", "--seeds", "2",
            "--steps", "50", "--db", str(db), "--time-limit", "15"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "time limit: 3 cell(s) not started" in " ".join(res.output.split())
    assert RunStore(db).count() == 1
    res = CliRunner().invoke(app, args[:-2])
    assert res.exit_code == 0 and RunStore(db).count() == 4


def test_runs_notes_reach_every_format() -> None:
    """Runs that carry a note (BC with nothing to clone) are counted per method and world, and
    every format shows the notes table."""
    runs = make_runs()
    note = "no oracle demonstrations: the oracle solves none"
    runs += [RunRecord(method="bc", world="IceRink-9x9", seed=s, steps=100, score_opt=0.1,
                       note=note) for s in range(3)]
    lb = build_leaderboard(runs, reps=100, tags_of=TAGS.__getitem__)
    assert [(n.method, n.world, n.runs, n.note) for n in lb.notes] == [
        ("bc", "IceRink-9x9", 3, note)]
    assert text_tables(lb)[-1].rows == [["bc", "IceRink-9x9", "3", note]]
    assert "### Notes" in render(lb, "md") and note in render(lb, "md")
    assert json.loads(render(lb, "json"))["notes"][0]["runs"] == 3
    assert any(r["table"].startswith("Notes") and r["value"] == note
               for r in csv.DictReader(io.StringIO(render(lb, "csv"))))
    assert build_leaderboard(make_runs(), reps=100, tags_of=TAGS.__getitem__).notes == []


def test_a_table_too_wide_for_the_console_is_split_by_columns() -> None:
    """On a narrow console the world x method matrix comes in parts that each fit, repeat the
    world column and together hold every number; a wide console gets it whole."""
    from rich.console import Console

    from autoworld.leaderboard.report import fit_tables, print_tables

    runs = [RunRecord(method=f"method-{k}", world=f"AVeryLongGeneratedWorldName-{w}-11x11",
                      seed=0, steps=100, score_opt=(k * 7 + w) % 10 / 10 - 0.05)
            for k in range(9) for w in range(3)]
    lb = build_leaderboard(runs, reps=100, tags_of=lambda w: {})
    matrix = next(t for t in text_tables(lb) if t.title.startswith("World x method"))
    narrow = Console(file=io.StringIO(), width=80, color_system=None)
    parts = fit_tables(narrow, matrix)
    assert len(parts) >= 2
    wide = Console(file=io.StringIO(), width=300, color_system=None)
    assert len(fit_tables(wide, matrix)) == 1
    print_tables(narrow, [matrix])
    text = narrow.file.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    expected = [float(v) for row in matrix.rows for v in row[1:]]
    assert sorted(_numbers(text)) == sorted(expected)
    assert text.count("AVeryLongGeneratedWorldName-0-11x11") == len(parts)


def test_one_run_per_world_says_why_the_intervals_have_no_width() -> None:
    one = [r for r in make_runs() if r.seed == 0]
    lb = build_leaderboard(one, reps=100, tags_of=TAGS.__getitem__)
    assert all(s.iqm.lo == s.iqm.hi for s in lb.summary)
    caption = text_tables(lb)[0].caption
    assert caption and "one run per world" in caption and "ppo" in caption
    assert caption in render(lb, "md")
    assert "one run per world" in " ".join(render(lb, "table").split())
    caption = text_tables(build_leaderboard(make_runs(), reps=100,
                                            tags_of=TAGS.__getitem__))[0].caption
    assert caption and "one run per world" not in caption and "spent" in caption
    no_record = [r.model_copy(update={"env_steps": None}) for r in make_runs()]
    assert text_tables(build_leaderboard(no_record, reps=100,
                                         tags_of=TAGS.__getitem__))[0].caption is None


def test_notes_shared_by_methods_are_one_row() -> None:
    note = "no oracle demonstrations: the oracle solves none"
    runs = make_runs() + [RunRecord(method=m, world="IceRink-9x9", seed=s, steps=100,
                                    score_opt=0.1, note=note)
                          for m in ("bc", "bc+ppo") for s in range(2)]
    lb = build_leaderboard(runs, reps=100, tags_of=TAGS.__getitem__)
    assert len(lb.notes) == 2  # the JSON keeps one entry per method
    assert text_tables(lb)[-1].rows == [["bc, bc+ppo", "IceRink-9x9", "4", note]]


def test_learning_upper_bound_and_gains_by_hand() -> None:
    """Best fixed method against the per-world best, on the worlds every method ran on, and the
    gain over the initial policy by number of worlds: hand-computed on a 3 x 2 grid."""
    score = {("a", "W1"): [0.9, 0.7], ("a", "W2"): [0.2], ("a", "W3"): [0.4],
             ("b", "W1"): [0.1], ("b", "W2"): [0.6], ("b", "W3"): [0.5],
             ("c", "W1"): [1.0]}  # c ran on one world only: left out
    runs = [RunRecord(method=m, world=w, seed=i, steps=10, score_opt=v, initial_score=0.1)
            for (m, w), vs in score.items() for i, v in enumerate(vs)]
    lb = build_leaderboard(runs, reps=100, tags_of=lambda w: {})
    ub = lb.upper_bound  # c ran on W1 only: the comparison keeps the worlds every method has
    assert (ub.worlds, ub.best_fixed_method, ub.best_method) == (1, "c", {"W1": "c"})
    runs = [r for r in runs if r.method != "c"]
    ub = build_leaderboard(runs, reps=100, tags_of=lambda w: {}).upper_bound
    # a: (0.8 + 0.2 + 0.4) / 3 = 0.4667; b: (0.1 + 0.6 + 0.5) / 3 = 0.4
    assert ub.worlds == 3 and ub.best_fixed_method == "a"
    assert ub.best_fixed_score == pytest.approx(1.4 / 3)
    assert ub.upper_bound_score == pytest.approx((0.8 + 0.6 + 0.5) / 3)
    assert ub.best_method == {"W1": "a", "W2": "b", "W3": "b"}
    one, everything = ub.gains  # n = 1 and all 3 worlds (6 >= 3 is left out)
    assert (one.worlds, one.subsets, everything.worlds) == (1, 3, 3)
    assert one.best_fixed_gain == pytest.approx(one.upper_bound_gain)  # one world: the same
    assert one.upper_bound_gain == pytest.approx((0.8 + 0.6 + 0.5) / 3 - 0.1)
    assert everything.best_fixed_gain == pytest.approx(1.4 / 3 - 0.1)
    assert everything.upper_bound_gain == pytest.approx((0.8 + 0.6 + 0.5) / 3 - 0.1)
    titles = [t.title for t in text_tables(build_leaderboard(runs, reps=100,
                                                             tags_of=lambda w: {}))]
    assert any(t.startswith("Learning upper bound") for t in titles)
    assert any(t.startswith("Gain over the initial policy") for t in titles)
    # runs without initial scores: the bound without the gains
    bare = [r.model_copy(update={"initial_score": None}) for r in runs]
    assert build_leaderboard(bare, reps=100, tags_of=lambda w: {}).upper_bound.gains == []


def test_the_gains_plot_is_written_when_runs_carry_initial_scores(tmp_path: Path) -> None:
    with_start = [r.model_copy(update={"initial_score": 0.05}) for r in make_runs()]
    names = {p.name for p in write_plots(build_leaderboard(
        with_start, reps=100, tags_of=TAGS.__getitem__), tmp_path / "a")}
    assert "gain_by_worlds.png" in names
    with Image.open(tmp_path / "a" / "gain_by_worlds.png") as im:
        assert im.format == "PNG"
    names = {p.name for p in write_plots(build_leaderboard(
        make_runs(), reps=100, tags_of=TAGS.__getitem__), tmp_path / "b")}
    assert "gain_by_worlds.png" not in names


def test_runs_at_different_budgets_are_never_pooled():
    from autoworld.leaderboard.report import BudgetError

    runs = []
    for seed in range(2):
        runs.append(RunRecord(method="ppo", world="Empty-6x6", seed=seed, steps=1_000,
                              score_opt=0.1))
        runs.append(RunRecord(method="ppo", world="Empty-6x6", seed=seed, steps=1_000_000,
                              score_opt=0.9))
    with pytest.raises(BudgetError, match=r"2 step budgets: 1,000 \(2 runs\), 1,000,000 "
                                          r"\(2 runs\).*--steps N"):
        build_leaderboard(runs, reps=100, tags_of=lambda w: {})
    for steps, score in ((1_000, 0.1), (1_000_000, 0.9)):
        lb = build_leaderboard(runs, reps=100, tags_of=lambda w: {}, steps=steps)
        (s,) = lb.summary
        assert lb.steps == steps and s.runs == 2 and s.iqm.point == pytest.approx(score)
        assert f"{steps:,} env steps per run" in text_tables(lb)[0].title
    with pytest.raises(BudgetError, match="--steps 5000: no finished run at that budget"):
        build_leaderboard(runs, reps=100, tags_of=lambda w: {}, steps=5000)
    # one budget needs no --steps
    assert build_leaderboard(runs[:1], reps=100, tags_of=lambda w: {}).steps == 1_000


def test_worlds_with_an_inexact_r_opt_are_marked() -> None:
    runs = [r.model_copy(update={"bound_flag": r.world == "IceRink-9x9"}) for r in make_runs()]
    lb = build_leaderboard(runs, reps=100, tags_of=TAGS.__getitem__)
    assert lb.inexact_worlds == ["IceRink-9x9"]
    matrix = next(t for t in text_tables(lb) if t.title.startswith("World x method"))
    # IceRink is stochastic too (~: a sampled R can exceed the expected optimum)
    assert lb.sampled_worlds == ["IceRink-9x9"]
    assert matrix.columns[:2] == ["world", "marks"]
    assert [row[:2] for row in matrix.rows] == [["DoorKey-8x8", ""], ["Empty-6x6", ""],
                                                ["IceRink-9x9", "\u2020~"]]
    assert "R_opt is not exact there" in matrix.caption
    assert "can exceed 1 by sampling noise" in matrix.caption
    assert "R_opt is not exact there" in render(lb, "md")
    plain = build_leaderboard(make_runs(), reps=100, tags_of=TAGS.__getitem__)
    assert plain.inexact_worlds == [] and "\u2020" not in render(plain, "md")


def test_a_table_of_runs_trained_with_different_settings_says_so() -> None:
    runs = [r.model_copy(update={"num_envs": 256 if r.seed < 2 else 1024,
                                 "device": "cpu" if r.seed < 2 else "cuda"})
            for r in make_runs()]
    lb = build_leaderboard(runs, reps=50, tags_of=TAGS.__getitem__)
    assert lb.settings == ["1024 envs on cuda", "256 envs on cpu"]
    assert "different settings (1024 envs on cuda; 256 envs on cpu)" in text_tables(lb)[0].caption
    same = [r.model_copy(update={"num_envs": 256, "device": "cpu"}) for r in make_runs()]
    assert "different settings" not in text_tables(
        build_leaderboard(same, reps=50, tags_of=TAGS.__getitem__))[0].caption


def test_spent_says_which_runs_it_covers() -> None:
    """A store filled partly before runs recorded their env-steps: ``spent`` averages the runs
    that did, and the caption says how many, per method."""
    runs = [r.model_copy(update={"env_steps": None}) if r.method == "ppo" and r.seed else r
            for r in make_runs()]
    lb = build_leaderboard(runs, reps=50, tags_of=TAGS.__getitem__)
    ppo = next(s for s in lb.summary if s.method == "ppo")
    assert (ppo.spent_runs, ppo.runs) == (3, 12) and ppo.spent == pytest.approx(0.96)
    assert "spent covers only the runs that recorded it (ppo 3 of 12)" in text_tables(lb)[0].caption


def test_cli_bench_of_methods_and_worlds_that_make_no_cell_is_an_error(tmp_path: Path) -> None:
    """An arm method on a grid world makes no cell: an error (it used to exit 0 and leave an
    empty store)."""
    from autoworld.cli.app import app

    res = CliRunner().invoke(app, ["bench", "--methods", "arm-ppo", "--worlds", "Empty-6x6",
                                   "--db", str(tmp_path / "y.db")])
    assert res.exit_code == 2 and "arm methods on arm worlds" in " ".join(res.output.split())
    assert not (tmp_path / "y.db").exists()
