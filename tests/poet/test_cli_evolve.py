"""`autoworld evolve` through typer: a tiny run writes its outputs, --report rebuilds the plots,
bad options are one clear error."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from autoworld.cli.evolve import evolve


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer()
    a.command("evolve")(evolve)
    a.command("other")(lambda: None)  # two commands: typer keeps the sub-command name
    return a


@pytest.mark.slow
def test_tiny_run_writes_metrics_plots_gifs_and_report_rebuilds(app, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["evolve", "--iterations", "2", "--population", "4",
                                 "--run-dir", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in lines] == [0, 1]
    assert json.loads((out / "config.json").read_text())["population"] == 4
    for name in ("annecs.png", "lineage.png", "scores.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert (out / "gifs" / "w0000.gif").read_bytes()[:3] == b"GIF"
    assert "worlds found" in r.output and "w0000" in r.output
    # --resume continues with the run's own options; --iterations may grow
    r = CliRunner().invoke(app, ["evolve", "--resume", "--iterations", "3", "--run-dir",
                                 str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in lines] == [0, 1, 2]
    # options that would change the trajectory are refused on resume, not silently dropped
    r = CliRunner().invoke(app, ["evolve", "--resume", "--iterations", "4", "--run-dir",
                                 str(out), "--population", "8", "--seed", "0", "--quiet"])
    assert r.exit_code == 2
    assert "--population 8 (the run's: 4)" in " ".join(r.output.split())
    assert "--seed" not in r.output.split("differ from them:")[1].split(";")[0]  # the same
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3  # nothing ran
    # naming the run's own preset is no difference (its --population 4 is the run's)
    r = CliRunner().invoke(app, ["evolve", "--resume", "--iterations", "4", "--run-dir",
                                 str(out), "--preset", "quick", "--population", "4", "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["evolve", "--resume", "--iterations", "5", "--run-dir",
                                 str(out), "--preset", "poet", "--quiet"])
    assert r.exit_code == 2 and "--preset poet (it sets" in " ".join(r.output.split())
    (out / "plots" / "annecs.png").unlink()
    r = CliRunner().invoke(app, ["evolve", "--report", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "plots" / "annecs.png").exists()


def test_report_without_a_checkpoint_plots_annecs_and_says_what_is_missing(app, tmp_path):
    """A run folder holding only its logs (copied off a machine without the checkpoints)."""
    lines = [{"iteration": i, "annecs": i // 2, "active_pairs": 3, "coverage": 0.25 + i / 100}
             for i in range(4)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    r = CliRunner().invoke(app, ["evolve", "--report", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "plots" / "annecs.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "plots" / "lineage.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "plots" / "scores.png").exists()
    assert "no checkpoint, so annecs.png and lineage.png come from" in " ".join(r.output.split())


def test_lineage_from_the_logs_alone(tmp_path) -> None:
    from autoworld.poet.report import state_from_logs

    events = [{"event": "admitted", "iteration": 25, "world": "w0002", "parent": "w0000"},
              {"event": "admitted", "iteration": 50, "world": "w0003", "parent": "w0002"},
              {"event": "archived", "iteration": 50, "world": "w0000", "agent": "a0000"},
              {"event": "solved", "iteration": 60, "world": "w0002"}]
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    metrics = [{"iteration": 0, "scores": {"w0000": 0.1, "w0001": 0.2}},
               {"iteration": 60, "scores": {"w0001": 0.3, "w0002": 0.9, "w0003": 0.0}}]
    state = state_from_logs(tmp_path, metrics)
    assert state["lineage"] == {"w0000": {"parent": None, "iteration": 0},
                                "w0001": {"parent": None, "iteration": 0},
                                "w0002": {"parent": "w0000", "iteration": 25},
                                "w0003": {"parent": "w0002", "iteration": 50}}
    assert [p["world"] for p in state["pairs"]] == ["w0001", "w0002", "w0003"]
    assert state["annecs"]["solved"] == ["w0002"]


def test_bad_options_are_one_clear_error(app, tmp_path):
    r = CliRunner().invoke(app, ["evolve", "--preset", "huge", "--run-dir", str(tmp_path)])
    assert r.exit_code == 2 and "--preset" in r.output
    r = CliRunner().invoke(app, ["evolve", "--population", "5", "--run-dir", str(tmp_path)])
    assert r.exit_code == 2 and "population" in r.output
    r = CliRunner().invoke(app, ["evolve", "--report", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "metrics.jsonl" in r.output
    r = CliRunner().invoke(app, ["evolve", "--generator", "bogus", "--run-dir", str(tmp_path)])
    assert r.exit_code == 2
    assert "--generator: unknown value 'bogus'; use 'procedural', 'openai' or 'transformers'" \
        in " ".join(r.output.split())
    assert "pydantic" not in r.output


@pytest.mark.slow
def test_default_run_finds_and_solves_new_worlds(app, tmp_path):
    """`autoworld evolve` with no options (quick preset, seed 0; ~2 CPU-minutes) admits children,
    solves at least one of them (ANNECS counts only admitted children, scored on their
    validation levels against the 0.9 threshold) and accepts transfers."""
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["evolve", "--run-dir", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["iteration"] == 59
    assert last["annecs"] >= 1 and last["transfers_total"] >= 1
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    solved = {e["world"] for e in events if e["event"] == "solved"}
    admitted = {e["world"] for e in events if e["event"] == "admitted"}
    assert solved and solved <= admitted and "w0000" not in solved
    # the lineage rebuilt from the logs alone is the checkpoint's
    from autoworld.poet.report import latest_state, read_metrics, state_from_logs

    _, state = latest_state(out)
    logs = state_from_logs(out, read_metrics(out))
    assert {w: (d["parent"], d["iteration"]) for w, d in logs["lineage"].items()} == {
        w: (d["parent"], d["iteration"]) for w, d in state["lineage"].items()}
    assert {p["world"] for p in logs["pairs"]} == {p["world"] for p in state["pairs"]}
    assert set(logs["annecs"]["solved"]) == set(state["annecs"]["solved"])
