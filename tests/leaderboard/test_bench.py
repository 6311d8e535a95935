"""The bench driver: grid selection, resuming after a crash or SIGKILL, failures, executors."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import zlib
from pathlib import Path

import pytest

from autoworld.envs.catalogue import load_world
from autoworld.leaderboard.bench import (
    BenchError,
    CellOutcome,
    outcome_from_result,
    pending,
    plan,
    run_bench,
    select_methods,
    select_worlds,
)
from autoworld.leaderboard.store import CellKey, RunStore

WORLDS = ["DoorKey-8x8", "Empty-6x6", "IceRink-9x9", "SlipperyLava-9x9"]
TAGS = {"DoorKey-8x8": ["partial"], "Empty-6x6": ["full"], "IceRink-9x9": ["full", "stochastic"],
        "SlipperyLava-9x9": ["full", "stochastic"]}


def fake_runner(cell: CellKey) -> CellOutcome:
    """Deterministic scores from the cell, no training."""
    score = (zlib.crc32(f"{cell.method}/{cell.world}".encode()) % 97 / 97 + cell.seed * 0.01) % 1.0
    return CellOutcome(score_opt=score, score_random=score - 0.1, raw_return=score * 2,
                       success=float(score > 0.5))


def threads_runner(cell: CellKey) -> CellOutcome:
    """Reports the worker's torch thread count as its return."""
    import torch

    return CellOutcome(score_opt=0.0, score_random=0.0, raw_return=float(torch.get_num_threads()),
                       success=0.0)


def slow_runner(cell: CellKey) -> CellOutcome:
    time.sleep(0.15)
    return fake_runner(cell)


class CountingRunner:
    def __init__(self, crash_after: int | None = None) -> None:
        self.calls: list[CellKey] = []
        self.crash_after = crash_after

    def __call__(self, cell: CellKey) -> CellOutcome:
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise KeyboardInterrupt("simulated kill")  # not an Exception: aborts the bench
        self.calls.append(cell)
        return fake_runner(cell)


def test_select_worlds_names_globs_tags() -> None:
    tags = TAGS.__getitem__
    assert select_worlds("all", WORLDS, tags) == sorted(WORLDS)
    assert select_worlds("Empty-6x6", WORLDS, tags) == ["Empty-6x6"]
    assert select_worlds("*Lava*,DoorKey-8x8", WORLDS, tags) == ["DoorKey-8x8",
                                                                 "SlipperyLava-9x9"]
    assert select_worlds("tag:stochastic", WORLDS, tags) == ["IceRink-9x9", "SlipperyLava-9x9"]
    with pytest.raises(BenchError, match="unknown world"):
        select_worlds("Nope-1x1", WORLDS, tags)
    with pytest.raises(BenchError, match="matches no world"):
        select_worlds("tag:inverse", WORLDS, tags)


def test_select_worlds_with_catalogue_tags() -> None:
    from autoworld.envs.catalogue import list_worlds

    partial = select_worlds("tag:partial", list_worlds())
    assert "DoorKey-8x8" in partial and "Empty-6x6" not in partial


def test_select_methods() -> None:
    assert select_methods("all", ["a", "b"]) == ["a", "b"]
    assert select_methods("b, a,b", ["a", "b"]) == ["b", "a"]
    with pytest.raises(BenchError, match="unknown method"):
        select_methods("c", ["a", "b"])


def test_bench_skips_finished_cells(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "lb.db")
    cells = plan(["a", "b"], WORLDS[:2], 3, 100)
    assert len(cells) == 12
    first = CountingRunner()
    run_bench(cells, store, first)
    assert len(first.calls) == 12 and store.count() == 12
    again = CountingRunner()
    assert run_bench(cells, store, again) == [] and again.calls == []
    bigger = plan(["a", "b"], WORLDS[:2], 4, 100)  # one more seed: only the new cells run
    more = CountingRunner()
    run_bench(bigger, store, more)
    assert sorted(c.seed for c in more.calls) == [3, 3, 3, 3] and store.count() == 16


def test_plan_puts_every_method_of_a_world_side_by_side() -> None:
    """Seed by seed, world by world: any prefix a cut-short call finishes compares all the
    methods on the same worlds (not one method on every world)."""
    cells = plan(["a", "b", "c"], WORLDS[:3], 2, 100)
    assert len(cells) == 18 and len(set(cells)) == 18
    assert [(c.method, c.world, c.seed) for c in cells[:4]] == [
        ("a", WORLDS[0], 0), ("b", WORLDS[0], 0), ("c", WORLDS[0], 0), ("a", WORLDS[1], 0)]
    assert {c.seed for c in cells[:9]} == {0} and {c.seed for c in cells[9:]} == {1}


def test_bench_crashed_midway_resumes_only_missing_cells(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "lb.db")
    cells = plan(["a", "b"], WORLDS, 2, 100)
    with pytest.raises(KeyboardInterrupt):
        run_bench(cells, store, CountingRunner(crash_after=5))
    assert store.count() == 5  # every finished cell was committed
    done = store.finished_keys()
    resumed = CountingRunner()
    run_bench(cells, store, resumed)
    assert set(resumed.calls) == set(cells) - done and len(resumed.calls) == len(cells) - 5
    assert store.count() == len(cells)


def test_bench_sessions_add_up_over_resumed_calls(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "lb.db")
    cells = plan(["a", "b"], WORLDS, 2, 100)
    seen = []

    def check(record) -> None:  # noqa: ANN001
        # the session's count moves on in the run's own transaction
        seen.append((store.sessions()[-1]["cells"], store.count()))

    with pytest.raises(KeyboardInterrupt):
        run_bench(cells, store, CountingRunner(crash_after=5), on_result=check,
                  info={"device": "cpu"})
    assert seen == [(i, i) for i in range(1, 6)]
    run_bench(cells, store, CountingRunner())
    run_bench(cells, store, CountingRunner())  # nothing left to run: no session
    first, second = store.sessions()
    assert (first["cells"], second["cells"]) == (5, len(cells) - 5)
    assert first["wall_s"] > 0 and second["wall_s"] > 0
    assert first["info"]["device"] == "cpu" and first["info"]["backend"] == "serial"
    assert first["info"]["cells_planned"] == len(cells)
    assert second["info"]["cells_planned"] == len(cells) - 5


def _bench_forever(path: str) -> None:
    run_bench(plan(["a", "b"], WORLDS, 2, 100), RunStore(path), slow_runner)


def test_bench_killed_with_sigkill_loses_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "lb.db")
    store = RunStore(path)
    cells = plan(["a", "b"], WORLDS, 2, 100)
    proc = mp.get_context("fork").Process(target=_bench_forever, args=(path,))
    proc.start()
    deadline = time.monotonic() + 30
    while store.count() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    done = store.finished_keys()
    assert 3 <= len(done) < len(cells)
    assert pending(store, cells) == [c for c in cells if c not in done]
    # the killed call's session kept its time up to its last recorded run
    (killed,) = store.sessions()
    assert killed["cells"] == len(done) and killed["wall_s"] >= 0.15 * len(done)
    resumed = CountingRunner()
    run_bench(cells, store, resumed)
    assert set(resumed.calls) == set(cells) - done
    assert len(resumed.calls) == len(cells) - len(done)
    assert store.count() == len(cells)


def flaky_runner(cell: CellKey) -> CellOutcome:
    if cell.seed == 1:
        raise RuntimeError("diverged")
    return fake_runner(cell)


def test_failed_cells_are_recorded_and_retried(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "lb.db")
    cells = plan(["a"], WORLDS[:2], 2, 100)
    records = run_bench(cells, store, flaky_runner)
    failed = [r for r in records if r.status == "failed"]
    assert len(failed) == 2 and all("diverged" in r.error for r in failed)
    assert store.count() == 2 and store.count("failed") == 2
    retry = CountingRunner()
    run_bench(cells, store, retry)
    assert sorted(c.seed for c in retry.calls) == [1, 1] and store.count() == 4


def test_process_backend_matches_serial(tmp_path: Path) -> None:
    cells = plan(["a", "b"], WORLDS[:2], 2, 100)
    serial = RunStore(tmp_path / "s.db")
    run_bench(cells, serial, fake_runner)
    proc = RunStore(tmp_path / "p.db")
    seen = []
    run_bench(cells, proc, fake_runner, backend="process", workers=2, on_result=seen.append)
    assert len(seen) == len(cells)
    strip = {"wall_time_s", "created_at"}
    assert [r.model_dump(exclude=strip) for r in proc.runs()] == [
        r.model_dump(exclude=strip) for r in serial.runs()]


def test_process_workers_share_the_cores(tmp_path: Path) -> None:
    """W workers on C cores get C // W torch threads each (not C each: W x C threads thrash)."""
    from autoworld.leaderboard.bench import worker_threads

    assert worker_threads(8, 16) == 2 and worker_threads(3, 2) == 1 and worker_threads(1, 4) == 4
    store = RunStore(tmp_path / "t.db")
    run_bench(plan(["a"], WORLDS[:2], 1, 100), store, threads_runner, backend="process",
              workers=2)
    assert {r.raw_return for r in store.runs()} == {float(worker_threads(2))}


def test_ray_backend_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(BenchError, match=r"autoworld\[ray\]"):
        run_bench(plan(["a"], WORLDS[:1], 1, 10), RunStore(tmp_path / "r.db"), fake_runner,
                  backend="ray")


@pytest.mark.slow
def test_ray_backend_on_a_local_instance_matches_serial(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    cells = plan(["a", "b"], WORLDS[:2], 2, 10)
    serial = RunStore(tmp_path / "serial.db")
    run_bench(cells, serial, fake_runner, backend="serial")
    distributed = RunStore(tmp_path / "ray.db")
    limited = RunStore(tmp_path / "ray-limited.db")  # 2 in flight at a time, refilled
    try:
        run_bench(cells, distributed, fake_runner, backend="ray", workers=2)
        run_bench(cells, limited, fake_runner, backend="ray", workers=2, time_limit=1e6)
    finally:
        ray.shutdown()

    def scores(store):
        return sorted((r.method, r.world, r.seed, r.score_opt) for r in store.runs())

    assert len(scores(distributed)) == len(cells)
    assert scores(distributed) == scores(serial) == scores(limited)


def test_outcome_from_a_nested_training_result() -> None:
    from pydantic import BaseModel

    class Eval(BaseModel):
        normalized: float
        normalized_gain: float
        mean_return: float
        success: float

    class Result(BaseModel):
        steps: int
        final: Eval

    out = outcome_from_result(Result(steps=5, final=Eval(normalized=0.9, normalized_gain=0.8,
                                                          mean_return=0.7, success=1.0)))
    assert out == CellOutcome(score_opt=0.9, score_random=0.8, raw_return=0.7, success=1.0)
    # a TrainResult-like shape: top-level ``score`` is R / R_opt
    top = outcome_from_result({"score": 0.4, "normalized_gain": 0.3, "mean_return": 2.0,
                               "success": 0.5, "evaluation": {"normalized": 0.9}})
    assert top == CellOutcome(score_opt=0.4, score_random=0.3, raw_return=2.0, success=0.5)
    with pytest.raises(BenchError, match="normalized"):
        outcome_from_result({"steps": 3})
    # a method that could not do its part says so in the stored note
    noted = outcome_from_result({"score": 0.1, "extra": {"no_demonstrations": "none solved"}})
    assert noted.note == "no oracle demonstrations: none solved"
    # the untrained policy's score, the baseline of the run's gain
    assert outcome_from_result({"score": 0.5, "extra": {"initial_score": -0.2}}
                               ).initial_score == -0.2


def test_outcome_from_the_real_train_result() -> None:
    train = pytest.importorskip("autoworld.learners.train")
    result = train.TrainResult(world="Empty-6x6", spec_hash="x", method="ppo", seed=0, steps=10,
                               wall_time=1.0, score=0.6, normalized_gain=0.5, mean_return=0.7,
                               success=1.0)
    assert outcome_from_result(result) == CellOutcome(score_opt=0.6, score_random=0.5,
                                                      raw_return=0.7, success=1.0)


def test_select_methods_accepts_method_family_members() -> None:
    assert select_methods("a,llm:gpt-x", ["a", "b"], families=["llm"]) == ["a", "llm:gpt-x"]
    assert select_methods("all", ["a", "b"], families=["llm"]) == ["a", "b"]
    with pytest.raises(BenchError, match="llm:<...>"):
        select_methods("llm:", ["a"], families=["llm"])
    with pytest.raises(BenchError, match="unknown method"):
        select_methods("llm:gpt-x", ["a"])  # no such family registered
    from autoworld.leaderboard.bench import method_families

    assert {"llm", "llm-hf"} <= set(method_families())


def test_tiny_budgets_get_a_rollout_that_fits() -> None:
    from autoworld.leaderboard.bench import budget_num_envs

    assert budget_num_envs(1000) == 31  # one 32-step rollout fits the budget
    assert budget_num_envs(10) == 1
    assert budget_num_envs(1_000_000) == 256  # large budgets keep the default
    assert budget_num_envs(1000, requested=512) == 512


def test_tiny_ppo_cell_trains_within_its_budget(tmp_path: Path, monkeypatch) -> None:
    import autoworld.learners.train as train_mod
    from autoworld.leaderboard.bench import make_train_runner

    seen = {}

    def fake_train(world, **kw):
        seen.update(kw, world=world)
        return {"score": 0.5}

    monkeypatch.setattr(train_mod, "train", fake_train)
    store = RunStore(tmp_path / "t.db")
    [rec] = run_bench(plan(["ppo"], ["Empty-6x6"], 1, 600), store, make_train_runner())
    assert rec.status == "finished" and rec.score_opt == 0.5
    assert seen["world"].name == "Empty-6x6" and seen["num_envs"] == 18
    rollout = seen["config"].num_envs * seen["config"].num_steps
    assert rollout <= 600  # not a default 256 x 128 rollout (32,768 steps)
    seen.clear()
    run_bench(plan(["es"], ["Empty-6x6"], 1, 100_000), store, make_train_runner())
    assert seen["method"] == "es" and seen["num_envs"] == 256  # large budgets: the default
    assert "config" not in seen  # only the ppo driver gets a sized rollout config


def test_cells_of_worlds_with_an_inexact_r_opt_are_flagged(tmp_path: Path, monkeypatch) -> None:
    import autoworld.learners.train as train_mod
    from autoworld.leaderboard.bench import make_train_runner, r_opt_inexact
    from autoworld.learners.evaluation import oracle_exact

    # TorusCoverage-7x7's validation levels are over the oracle's state cap: upper bounds
    assert oracle_exact(load_world("TorusCoverage-7x7"), "validation") == [False] * 5
    assert all(oracle_exact(load_world("Empty-6x6"), "validation"))
    assert r_opt_inexact("TorusCoverage-7x7") and not r_opt_inexact("Empty-6x6")
    assert r_opt_inexact("ArmReach-arm3")  # a scripted expert's return, not an optimum
    monkeypatch.setattr(train_mod, "train", lambda world, **kw: {"score": 0.5})
    store = RunStore(tmp_path / "b.db")
    recs = run_bench(plan(["ppo"], ["Empty-6x6", "TorusCoverage-7x7"], 1, 600), store,
                     make_train_runner())
    assert {r.world: r.bound_flag for r in recs} == {"Empty-6x6": False,
                                                     "TorusCoverage-7x7": True}
    assert {r.world: r.bound_flag for r in store.runs()} == {"Empty-6x6": False,
                                                             "TorusCoverage-7x7": True}


def test_llm_method_cells_rank_a_scripted_endpoint(tmp_path: Path) -> None:
    pytest.importorskip("openai")
    from autoworld.leaderboard.bench import make_train_runner
    from tests.learners.test_llm_agent import ScriptedChatServer, oracle_lookup, oracle_policy

    store = RunStore(tmp_path / "llm.db")
    with ScriptedChatServer(oracle_policy(oracle_lookup("Empty-6x6"))) as server:
        runner = make_train_runner(llm_base_url=server.url, llm_workers=4,
                                   run_root=str(tmp_path / "runs"))
        [rec] = run_bench(plan(["llm:oracle-bot"], ["Empty-6x6"], 1, 1), store, runner)
    assert rec.status == "finished", rec.error
    assert rec.method == "llm:oracle-bot" and rec.score_opt == pytest.approx(1.0)
    assert rec.success == 1.0 and len(server.bodies) == 17  # one request per decision
    assert (tmp_path / "runs" / "llm_oracle-bot" / "Empty-6x6" / "seed0" / "result.json").is_file()


def test_arm_methods_pair_only_with_arm_worlds() -> None:
    """Grid methods train on grid worlds and arm methods on arm worlds: a mixed selection plans
    only the cells whose method and world are of one family."""
    cells = plan(["ppo", "arm-ppo"], ["DoorKey-8x8", "ArmReach-arm3"], 1, 100)
    assert [(c.method, c.world) for c in cells] == [("ppo", "DoorKey-8x8"),
                                                    ("arm-ppo", "ArmReach-arm3")]
    assert select_worlds("ArmReach-arm3,Empty-6x6", WORLDS, TAGS.__getitem__) == [
        "ArmReach-arm3", "Empty-6x6"]
    with pytest.raises(BenchError, match="unknown world"):
        select_worlds("ArmNothing-arm3", WORLDS, TAGS.__getitem__)


def test_arm_worlds_have_taxonomy_classes() -> None:
    """Arm worlds break down by taxonomy class like grid worlds (not as ``unknown``)."""
    from autoworld.leaderboard.report import catalogue_tags

    for name in ("ArmReach-N3", "ArmReach-arm3"):
        assert catalogue_tags(name) == {"reward": "cumulative", "observation": "full",
                                        "semantics": "aligned", "dynamics": "deterministic"}
    assert catalogue_tags("DoorKey-8x8")["observation"] == "partial"
    assert set(catalogue_tags("NoSuchWorld-1").values()) == {"unknown"}


class _Clock:
    """A fake perf_counter that only the runner moves (each run takes ``step`` seconds)."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now

    def runner(self, cell: CellKey) -> CellOutcome:
        self.now += self.step
        return fake_runner(cell)


def test_time_limit_starts_no_run_that_would_end_past_it(tmp_path: Path, monkeypatch) -> None:
    """Runs of 10 s under a 35 s limit: three start (the third ends at 30 s), the fourth would
    end at 40 s and does not start; the next call runs the rest, and the cells are the same as
    one call without a limit."""
    import autoworld.leaderboard.bench as bench

    clock = _Clock(10.0)
    monkeypatch.setattr(bench, "_now", clock)
    cells = plan(["a", "b"], WORLDS, 1, 100)
    store = RunStore(tmp_path / "lb.db")
    first = run_bench(cells, store, clock.runner, time_limit=35)
    assert [r.world for r in first] == [c.world for c in cells[:3]]
    assert store.sessions()[0]["info"]["time_limit_s"] == 35
    rest = run_bench(cells, store, clock.runner)
    assert len(rest) == len(cells) - 3 and store.count() == len(cells)
    # the first run always starts, even when the limit is shorter than a run
    assert len(run_bench(cells, RunStore(tmp_path / "b.db"), clock.runner, time_limit=1)) == 1


def test_time_limit_fills_the_end_with_quicker_methods(tmp_path: Path, monkeypatch) -> None:
    """Each method's own mean run time judges its next cell: near the limit a slow cell that
    would not fit is passed over for quick ones that still do, and stays pending."""
    import autoworld.leaderboard.bench as bench

    clock = _Clock(0.0)
    monkeypatch.setattr(bench, "_now", clock)
    seconds = {"fast": 1.0, "slow": 10.0}

    def runner(cell: CellKey) -> CellOutcome:
        clock.now += seconds[cell.method]
        return fake_runner(cell)

    order = ["fast", "slow", "slow", "slow", "fast", "fast"]
    cells = [CellKey(method=m, world="Empty-6x6", seed=i, steps=100) for i, m in enumerate(order)]
    store = RunStore(tmp_path / "lb.db")
    done = run_bench(cells, store, runner, time_limit=25)
    # fast 0-1, slow 1-11, slow 11-21; the third slow would end at 31: passed over for the two
    # fast ones (21-22, 22-23); by the mean of all runs (7 s) the call would stop at 21 s
    assert [(r.method, r.seed) for r in done] == [("fast", 0), ("slow", 1), ("slow", 2),
                                                  ("fast", 4), ("fast", 5)]
    assert [c.seed for c in bench.pending(store, cells)] == [3]


def test_time_limit_with_processes_keeps_the_rest_pending(tmp_path: Path) -> None:
    """Process workers: with a limit that the first runs use up, no new run starts after it and
    the store holds exactly the runs that finished."""
    cells = plan(["a", "b"], WORLDS, 2, 100)  # 16 cells of 0.15 s, 2 at a time
    store = RunStore(tmp_path / "lb.db")
    start = time.perf_counter()
    done = run_bench(cells, store, slow_runner, backend="process", workers=2, time_limit=0.5)
    assert 2 <= len(done) < len(cells)
    assert store.count() == len(done)
    assert time.perf_counter() - start < 30  # it stopped early (spawning workers included)
    run_bench(cells, store, slow_runner, backend="process", workers=2)
    assert store.count() == len(cells)


def test_suite_core36_is_the_leaderboard_grid() -> None:
    """suite:core36 selects 36 catalogue grid worlds covering both values of every taxonomy
    axis; an unknown suite is named in the error."""
    from autoworld.leaderboard.bench import available_worlds
    from autoworld.leaderboard.report import catalogue_tags

    worlds = select_worlds("suite:core36", available_worlds())
    assert len(worlds) == 36 and "DoorKey-8x8" in worlds
    tags = {t for w in worlds for t in catalogue_tags(w).values()}
    assert {"binary", "cumulative", "full", "partial", "aligned", "inverse", "deterministic",
            "stochastic"} <= tags
    assert select_worlds("suite:core36,Empty-6x6", available_worlds()) == worlds
    with pytest.raises(BenchError, match="suite:core36"):
        select_worlds("suite:core99", available_worlds())
    with pytest.raises(BenchError, match="lacks"):
        select_worlds("suite:core36", WORLDS)


def test_every_grid_method_keeps_within_its_budget_and_the_store_says_what_it_spent(
        tmp_path: Path) -> None:
    """A budget is a cap: each method stops at its last whole rollout or generation within it
    (weight-space methods fit their last generation to what is left), and the store keeps the
    env-steps each run took, which the leaderboard shows as a fraction of the budget."""
    from autoworld.leaderboard.bench import make_train_runner
    from autoworld.leaderboard.report import build_leaderboard
    from autoworld.learners.methods import grid_methods

    store = RunStore(tmp_path / "cap.db")
    budget = 2_500
    methods = grid_methods()
    recs = run_bench(plan(methods, ["Empty-6x6"], 1, budget), store, make_train_runner())
    assert [r.status for r in recs] == ["finished"] * len(methods), [r.error for r in recs]
    for r in recs:
        assert r.env_steps is not None and r.env_steps <= budget, r
        # BC learns from the oracle's demonstrations; PBT's 4 members get 625 steps each, one
        # rollout of 19 envs x 32 steps (608) apiece
        assert r.env_steps == 0 if r.method == "bc" else r.env_steps >= 0.5 * budget, r
        assert (r.num_envs, r.device) == (78, "cpu")  # the budget's envs: 2,500 // 32
    lb = build_leaderboard(store.runs(), reps=50)
    assert {s.method: s.spent for s in lb.summary} == {r.method: r.env_steps / budget
                                                        for r in recs}
    assert lb.settings == ["78 envs on cpu"]
