"""The E1-E3 experiments end to end at test size, the CLI, and their statistics helpers."""

from __future__ import annotations

import json

import pytest

from autoworld.embodiment import ExperimentError, run_experiment
from autoworld.embodiment.common import data_equivalence, get_scale, mean_ci


def needs_demos():
    pytest.importorskip("autoworld.envs.arm.demos")


def test_mean_ci():
    c = mean_ci([0.2, 0.4, 0.6], bounds=None)
    assert c["mean"] == pytest.approx(0.4)
    # t(0.975, 2) = 4.303, sd = 0.2, n = 3
    assert c["hi"] - c["mean"] == pytest.approx(4.3027 * 0.2 / 3 ** 0.5, rel=1e-3)
    assert mean_ci([0.5])["lo"] == 0.5
    assert mean_ci([0.0, 0.5])["lo"] == 0.0  # rates: the interval stays in [0, 1]
    assert mean_ci([0.5, float("nan")])["n"] == 1
    assert mean_ci([])["n"] == 0


def test_data_equivalence():
    sizes = [100, 200, 400]
    assert data_equivalence(sizes, [0.2, 0.4, 0.6], 0.1) == 1.0
    assert data_equivalence(sizes, [0.2, 0.4, 0.6], 0.4) == pytest.approx(2.0)
    assert data_equivalence(sizes, [0.2, 0.4, 0.6], 0.5) == pytest.approx(2 ** 1.5)
    assert data_equivalence(sizes, [0.2, 0.4, 0.6], 0.7) is None
    # a noisy dip does not create a second crossing
    assert data_equivalence(sizes, [0.2, 0.5, 0.45], 0.5) == pytest.approx(2.0)


def test_unknown_inputs_are_typed_errors(tmp_path):
    with pytest.raises(ExperimentError, match="E4"):
        run_experiment("E4", "tiny", out=tmp_path)
    with pytest.raises(ExperimentError, match="scale"):
        get_scale("huge")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["E1", "E2", "E3"])
def test_experiment_runs_end_to_end(tmp_path, name):
    needs_demos()
    res = run_experiment(name, "tiny", seeds=1, out=tmp_path)

    def strict(const):  # NaN / Infinity are not JSON
        raise AssertionError(f"results.json holds {const}")

    data = json.loads((tmp_path / "results.json").read_text(), parse_constant=strict)
    assert data["experiment"] == name and data["seeds"] == 1
    assert (tmp_path / "results.md").read_text().startswith(f"# {name}")
    for plot in data["plots"]:
        png = (tmp_path / plot).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert res["experiment"] == name
    if name == "E1":
        for strategy in ("episode", "task", "scenario"):
            assert len(data["per_seed"][strategy]["train"]) == 1
            assert all(0.0 <= s <= 1.0 for s in data["per_seed"][strategy]["shifted"])
        # task-sampled sets hold fewer tasks than episode-sampled ones
        assert (max(d["tasks"] for d in data["diversity"]["task"])
                <= min(d["tasks"] for d in data["diversity"]["episode"]))
    if name == "E2":
        assert data["aggregate"]["finetune"]["arm5"]["scratch"]["0"]["mean"] is None
    if name == "E3":
        split = data["per_seed"]["side_split"]
        for biased, debiased in zip(split["none"], split["debias"], strict=True):
            assert biased["right_share"] == pytest.approx(debiased["right_share"], abs=0.15)


def test_cli_passes_options_and_rejects_bad_ones(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    import autoworld.embodiment as emb
    from autoworld.cli.embodiment import embodiment

    calls = []

    def fake_run(name, scale, seeds, out, device, progress=None):
        calls.append((name, scale, seeds, str(out), device))
        return {"experiment": name.upper(), "seeds": seeds or 2, "seconds": 0.0}

    monkeypatch.setattr(emb, "run_experiment", fake_run)
    app = typer.Typer()
    app.command()(embodiment)
    run = CliRunner().invoke
    res = run(app, ["e2", "--quick", "--seeds", "3", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert calls[-1] == ("e2", "quick", 3, str(tmp_path), "cpu")
    assert run(app, ["E1", "--tiny", "--out", str(tmp_path)]).exit_code == 0
    assert calls[-1][1:3] == ("tiny", None)
    assert run(app, ["E1", "--out", str(tmp_path)]).exit_code == 0
    assert calls[-1][1] == "full"
    assert run(app, ["E9", "--out", str(tmp_path)]).exit_code == 2
    assert run(app, ["E1", "--quick", "--tiny"]).exit_code == 2
    assert len(calls) == 3


def test_side_agreement_sees_chunks_on_the_wrong_side():
    from autoworld.embodiment.common import collect, worlds_for
    from autoworld.embodiment.e3 import side_split

    demos = collect(worlds_for(("reach_around",), "arm3"), 12, seed=0)
    right = side_split(demos, 4, "none")["agreement"]
    assert right > 0.7  # the expert's +1 is a detour to the right of the start-goal line
    demos.side = -demos.side  # every recorded side wrong: it used to score the same
    assert side_split(demos, 4, "none")["agreement"] == pytest.approx(1 - right)
