"""End-to-end POET runs on a tiny config: admission, transfers, exact resume after SIGKILL,
corrupted-checkpoint recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoworld.poet.checkpoint import list_checkpoints
from autoworld.poet.config import CheckpointError, PoetConfig, PoetError
from autoworld.poet.loop import WALL_CLOCK_FIELDS, PoetRun

# Every pair is eligible and every valid child passes the MC, so that a few iterations exercise
# reproduction, PATA-EC ranking, the cap and transfers.
TINY = dict(iterations=7, seed=3, population=8, episodes=1, eval_episodes=1, hidden=8,
            reproduce_every=2, transfer_every=3, repro_threshold=-1.0, mc_low=-1.0, mc_high=1.0,
            mutation_attempts=2, max_admitted=1, max_active=3, mutation_strength=0.2,
            validation_levels=2, tensorboard=False, gifs=False, archive_sample=4,
            transfer_proposals=1, train_levels=16)


def _lines(path: Path) -> list[dict]:
    out = []
    for raw in path.read_text().splitlines():
        rec = json.loads(raw)
        for k in WALL_CLOCK_FIELDS:
            rec.pop(k, None)
        out.append(rec)
    return out


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("poet") / "full"
    run = PoetRun(PoetConfig(**TINY), out)
    run.run()
    run.close()
    return out


_CHILD = """
import sys, time, torch
torch.set_num_threads(1)
from autoworld.poet.config import PoetConfig
from autoworld.poet.loop import PoetRun
cfg = PoetConfig.model_validate_json(sys.argv[1])
run = PoetRun(cfg, sys.argv[2], resume=sys.argv[3] == "1")
run.run(lambda line: time.sleep(float(sys.argv[4])))
"""


def _spawn(cfg: PoetConfig, out: Path, resume: bool, pause: float) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _CHILD, cfg.model_dump_json(), str(out),
                             "1" if resume else "0", str(pause)], env=env,
                            stderr=subprocess.PIPE)


@pytest.mark.slow
def test_short_run_admits_children_and_attempts_transfers(full_run: Path):
    events = [json.loads(x) for x in (full_run / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert "admitted" in kinds
    metrics = _lines(full_run / "metrics.jsonl")
    assert [m["iteration"] for m in metrics] == list(range(TINY["iterations"]))
    assert max(m["active_pairs"] for m in metrics) >= 2
    assert all(m["active_pairs"] <= TINY["max_active"] for m in metrics)
    state = json.loads((list_checkpoints(full_run / "checkpoints")[-1] / "state.json")
                       .read_text())
    assert state["counters"]["transfers_attempted"] > 0
    admitted = [e for e in events if e["event"] == "admitted"]
    assert all(e["parent"] in state["lineage"] for e in admitted)
    assert all(e["novelty"] >= 0 for e in admitted)
    assert len(list_checkpoints(full_run / "checkpoints")) == 2  # the last two are kept


@pytest.mark.slow
def test_resume_after_sigkill_writes_the_same_metrics(full_run: Path, tmp_path: Path):
    out = tmp_path / "killed"
    cfg = PoetConfig(**TINY)
    proc = _spawn(cfg, out, resume=False, pause=0.5)
    deadline = time.time() + 120
    metrics = out / "metrics.jsonl"
    while time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(metrics.read_text().splitlines())
    assert done < TINY["iterations"], "the run ended before it could be killed"
    proc = _spawn(cfg, out, resume=True, pause=0.0)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert _lines(metrics) == _lines(full_run / "metrics.jsonl")
    events_a = (out / "events.jsonl").read_text()
    assert events_a == (full_run / "events.jsonl").read_text()


def _short(**kw) -> PoetConfig:
    return PoetConfig(**{**TINY, "iterations": 3, "reproduce_every": 50, "transfer_every": 50,
                         **kw})


def test_corrupted_checkpoint_falls_back_to_the_previous_one(tmp_path: Path):
    out = tmp_path / "run"
    run = PoetRun(_short(), out)
    run.run()
    ref = _lines(out / "metrics.jsonl")
    newest, previous = list_checkpoints(out / "checkpoints")[::-1]
    state = newest / "state.json"
    state.write_bytes(state.read_bytes()[:-40] + b"X" * 40)  # same size, other bytes
    resumed = PoetRun(_short(iterations=3), out, resume=True)
    assert resumed.iteration == int(previous.name.split("-")[1])
    assert any("corrupted" in w for w in resumed.warnings)
    resumed.run()
    assert _lines(out / "metrics.jsonl") == ref  # the lost iteration is recomputed exactly


def test_truncated_and_missing_checkpoints_are_clear_errors(tmp_path: Path):
    out = tmp_path / "run"
    run = PoetRun(_short(iterations=2), out)
    run.run()
    for folder in list_checkpoints(out / "checkpoints"):
        t = folder / "tensors.safetensors"
        t.write_bytes(t.read_bytes()[:10])
    with pytest.raises(CheckpointError, match="truncated"):
        PoetRun(_short(iterations=2), out, resume=True)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        PoetRun(_short(), tmp_path / "empty", resume=True)


def test_resume_refuses_changed_options_and_fresh_runs_refuse_old_dirs(tmp_path: Path):
    out = tmp_path / "run"
    PoetRun(_short(iterations=1), out).run()
    with pytest.raises(PoetError, match="lr"):
        PoetRun(_short(lr=0.02), out, resume=True)
    with pytest.raises(PoetError, match="--resume"):
        PoetRun(_short(), out)


def test_config_errors_name_the_field():
    with pytest.raises(PoetError, match="population"):
        PoetConfig(population=7)
    with pytest.raises(PoetError, match="mc_low"):
        PoetConfig(mc_low=0.9, mc_high=0.1)


def test_each_iteration_scores_only_the_diagonal(tmp_path: Path):
    run = PoetRun(_short(iterations=2), tmp_path / "run")
    run.worlds["w0001"] = run.worlds["w0000"]  # a second pair (the same world under a new id)
    run.pairs.append(run._pair("w0001", run._new_agent_id(), run.pairs[0].theta + 0.1))
    calls = []
    evaluate = run.executor.evaluate

    def spy(worlds, jobs, *args):
        calls.append([(j.agent, j.world) for j in jobs])
        return evaluate(worlds, jobs, *args)

    run.executor.evaluate = spy
    run.run()
    assert calls == [[("a0000", "w0000"), ("a0001", "w0001")]] * 2
    assert run.matrix.get("a0000", "w0001") is None  # the off-diagonal is never computed


def test_the_iteration_after_a_transfer_builds_no_engine(tmp_path: Path, monkeypatch):
    from autoworld.poet import rollout

    built = []
    make = rollout.make_engine
    monkeypatch.setattr(rollout, "make_engine", lambda *a, **k: built.append(1) or make(*a, **k))
    from autoworld.envs.catalogue import load_world
    from autoworld.poet.worlds import validate_world

    cfg = _short(iterations=4, transfer_every=2, transfer_proposals=2)
    run = PoetRun(cfg, tmp_path / "run")
    for i, name in enumerate(["ExploreTheMap-3b7c60-5x5", "BackwardsRace-48115a-6x6"], 1):
        entry, why = validate_world(load_world(name), cfg)
        assert entry is not None, why
        run.worlds[f"w000{i}"] = entry  # three pairs on three worlds, so that transfers run
        run.pairs.append(run._pair(f"w000{i}", run._new_agent_id(), run.pairs[0].theta + 0.1))
    per_iteration = []
    for _ in range(4):
        built.clear()
        run.step()
        per_iteration.append(len(built))
    # iteration 0 builds the ES and scoring engines; the transfer at 2 builds its own three
    # and keeps those two, which iteration 3 uses again
    assert per_iteration == [2, 0, 3, 0]
