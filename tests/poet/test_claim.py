"""The POET claim benchmark's world selection and summary (benchmarks/poet_claim.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from autoworld.poet.config import PoetConfig
from autoworld.poet.loop import PoetRun
from tests.poet.test_loop import TINY

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "poet_claim.py"
_spec = importlib.util.spec_from_file_location("poet_claim", _PATH)
claim = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(claim)


def _write_events(run: Path, events: list[dict]) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_late_worlds_solved_and_admitted(tmp_path: Path):
    run = tmp_path / "run"
    _write_events(run, [
        {"iteration": 5, "event": "admitted", "world": "w1"},
        {"iteration": 10, "event": "admitted", "world": "w2"},
        {"iteration": 12, "event": "solved", "world": "w1"},
        {"iteration": 15, "event": "admitted", "world": "w3"},
        {"iteration": 20, "event": "admitted", "world": "w4"},
        {"iteration": 22, "event": "rejected", "world": None},
        {"iteration": 30, "event": "solved", "world": "w4"},
        {"iteration": 31, "event": "solved", "world": "w2"},
    ])
    # solved, by the iteration they were solved at: w1 (12), w4 (30), w2 (31); later half
    assert claim.late_solved_worlds(run) == [("w4", 30), ("w2", 31)]
    # admitted, by admission: w1, w2, w3, w4; later half w3 (never solved: the whole run's
    # 40 iterations) and w4 (solved at 30: 31 iterations)
    assert claim.late_admitted_worlds(run, 40) == [("w3", 40, False), ("w4", 31, True)]


def test_success_interval_brackets_the_mean():
    ci = claim.success_interval([1.0, 0.0, 1.0, 1.0])
    assert ci["mean"] == 0.75 and 0.0 <= ci["lo"] <= 0.75 <= ci["hi"] <= 1.0
    assert claim.success_interval([1.0, 1.0]) == {"mean": 1.0, "lo": 1.0, "hi": 1.0}


@pytest.mark.slow
def test_claim_on_a_tiny_run_compares_both_rates(tmp_path: Path, capsys):
    out = tmp_path / "run"
    run = PoetRun(PoetConfig(**TINY), out)
    run.run()
    run.close()
    claim.main([str(out), "--seeds", "2", "--worlds", "admitted", "--max-worlds", "1",
                "--eval-every", "2"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    world, summary = lines[0], lines[-1]
    assert world["bench"] == "poet_claim_world" and world["selection"] == "admitted"
    assert world["poet_success"] in (0.0, 1.0) and 0.0 <= world["scratch_success"] <= 1.0
    assert summary["worlds"] == 1 and set(summary["poet_minus_scratch"]) == {"mean", "lo", "hi"}
    assert summary["poet_minus_scratch"]["mean"] == pytest.approx(
        world["poet_success"] - world["scratch_success"], abs=1e-4)


@pytest.mark.slow
def test_from_scratch_batches_worlds_without_changing_any(tmp_path: Path):
    """All late worlds' agents in one executor call per step (each world stopping at its own
    budget) give each world the row it gets alone."""
    out = tmp_path / "run"
    run = PoetRun(PoetConfig(**TINY), out)
    run.run()
    run.close()
    admitted = [e["world"] for e in claim._events(out) if e["event"] == "admitted"]
    assert len(admitted) >= 2
    late = [(admitted[0], 5), (admitted[1], 3)]
    together = claim.from_scratch(out, late, 2, 2)
    assert together == [claim.from_scratch(out, [w], 2, 2)[0] for w in late]
    assert [r["budget_es_steps"] for r in together] == [5, 3]
