"""The SQLite store: round trips, the unique cell key, and concurrent writers losing nothing."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from autoworld.leaderboard.store import CellKey, RunRecord, RunStore, StoreError


def record(method: str = "ppo", world: str = "Empty-6x6", seed: int = 0, steps: int = 100,
           **kw) -> RunRecord:
    kw.setdefault("score_opt", 0.5)
    return RunRecord(method=method, world=world, seed=seed, steps=steps, **kw)


def test_round_trip_and_wal(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "lb.db")
    run = record(score_random=0.25, raw_return=1.5, success=1.0, bound_flag=True,
                 wall_time_s=2.0, autoworld_version="0.1.0", torch_version="2.3")
    store.record(run)
    assert store.runs() == [run]
    assert store.finished_keys() == {CellKey(method="ppo", world="Empty-6x6", seed=0, steps=100)}
    conn = sqlite3.connect(tmp_path / "lb.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_unique_cell_and_status_rules(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "lb.db")
    store.record(record(status="failed", score_opt=None, error="boom"))
    assert store.count() == 0 and store.count(None) == 1 and store.finished_keys() == set()
    store.record(record(score_opt=0.7))  # a finished run replaces the failed one
    assert [r.score_opt for r in store.runs()] == [0.7] and store.count(None) == 1
    store.record(record(status="failed", score_opt=None, error="late"))  # never downgrades
    assert store.runs()[0].status == "finished" and store.runs()[0].score_opt == 0.7
    store.record(record(steps=200))  # another budget is another cell
    assert store.count() == 2


def test_record_many_is_all_or_nothing(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "lb.db")

    def rows():
        yield record(seed=0)
        raise RuntimeError("mid-transaction failure")

    with pytest.raises(RuntimeError):
        store.record_many(rows())
    assert store.count(None) == 0


def test_bad_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="directory"):
        RunStore(tmp_path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="leaderboard|database"):
        RunStore(junk)


def _writer(path: str, worker: int, n: int) -> None:
    store = RunStore(path)
    for i in range(n):
        store.record(record(method=f"m{worker}", world=f"w{i % 3}", seed=i, score_opt=i / n))


def test_concurrent_writers_lose_no_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "lb.db")
    ctx = mp.get_context("fork")
    workers, n = 4, 30
    procs = [ctx.Process(target=_writer, args=(path, w, n)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = RunStore(path)
    runs = store.runs()
    assert len(runs) == workers * n
    assert {(r.method, r.seed) for r in runs} == {(f"m{w}", i) for w in range(workers)
                                                  for i in range(n)}


def test_a_store_from_before_notes_gains_the_column(tmp_path: Path) -> None:
    """A store written before runs carried notes opens: its rows read back with an empty note,
    and new rows keep theirs."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE runs (
                id INTEGER PRIMARY KEY AUTOINCREMENT, method TEXT NOT NULL, world TEXT NOT NULL,
                seed INTEGER NOT NULL, steps INTEGER NOT NULL, score_opt REAL,
                score_random REAL, raw_return REAL, success REAL,
                bound_flag INTEGER NOT NULL DEFAULT 0, wall_time_s REAL NOT NULL DEFAULT 0,
                autoworld_version TEXT NOT NULL DEFAULT '',
                torch_version TEXT NOT NULL DEFAULT '',
                status TEXT NOT NULL CHECK (status IN ('finished', 'failed')),
                error TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL,
                UNIQUE (method, world, seed, steps));
            INSERT INTO runs (method, world, seed, steps, score_opt, status, created_at)
            VALUES ('ppo', 'Empty-6x6', 0, 100, 0.5, 'finished', '2026-01-01T00:00:00+00:00');
        """)
    store = RunStore(path)
    store.record(RunRecord(method="bc", world="Empty-6x6", seed=0, steps=100, score_opt=0.1,
                           note="nothing cloned", initial_score=-0.25, env_steps=64,
                           num_envs=8, device="cpu"))
    assert [(r.method, r.note, r.initial_score, r.env_steps, r.num_envs, r.device)
            for r in store.runs()] == [("bc", "nothing cloned", -0.25, 64, 8, "cpu"),
                                       ("ppo", "", None, None, None, "")]
    RunStore(path)  # opening it again changes nothing
