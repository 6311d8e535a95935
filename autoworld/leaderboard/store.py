"""The leaderboard store: one SQLite file (WAL mode) holding one row per bench cell.

A cell is identified by ``(method, world, seed, steps)``. Every write is its own ``BEGIN
IMMEDIATE`` transaction, so several processes may write to one file at once (SQLite serializes
them; ``busy_timeout`` makes a writer wait instead of failing) and a killed writer loses at most
the cell it was running. Finished cells are skipped by the bench; failed ones are retried.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from autoworld.errors import AutoworldError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 60_000

T = TypeVar("T")
Status = Literal["finished", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    method TEXT NOT NULL,
    world TEXT NOT NULL,
    seed INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    score_opt REAL,
    score_random REAL,
    raw_return REAL,
    success REAL,
    bound_flag INTEGER NOT NULL DEFAULT 0,
    wall_time_s REAL NOT NULL DEFAULT 0,
    autoworld_version TEXT NOT NULL DEFAULT '',
    torch_version TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('finished', 'failed')),
    error TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    initial_score REAL,
    env_steps INTEGER,
    num_envs INTEGER,
    device TEXT NOT NULL DEFAULT '',
    UNIQUE (method, world, seed, steps)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bench_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    wall_s REAL NOT NULL DEFAULT 0,
    cells INTEGER NOT NULL DEFAULT 0,
    info TEXT NOT NULL DEFAULT '{}'
);
"""

_COLUMNS = (
    "method", "world", "seed", "steps", "score_opt", "score_random", "raw_return", "success",
    "bound_flag", "wall_time_s", "autoworld_version", "torch_version", "status", "error",
    "created_at", "note", "initial_score", "env_steps", "num_envs", "device",
)
# columns added after the first stores were written: (name, type) added when a store lacks them
_ADDED_COLUMNS = (("note", "TEXT NOT NULL DEFAULT ''"), ("initial_score", "REAL"),
                  ("env_steps", "INTEGER"), ("num_envs", "INTEGER"),
                  ("device", "TEXT NOT NULL DEFAULT ''"))


class StoreError(AutoworldError):
    """The leaderboard database cannot be opened or has an unexpected layout."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SessionTick(NamedTuple):
    """A bench session's progress, written with a run: its id and its wall time so far."""

    id: int
    wall_s: float


class CellKey(BaseModel):
    """One cell of a bench grid: a method trained on a world with a seed for a step budget."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str = Field(description="Registered learning-method name.", min_length=1)
    world: str = Field(description="World name (catalogue name or spec path).", min_length=1)
    seed: int = Field(description="Root seed of the run.", ge=0)
    steps: int = Field(description="Environment-step budget of the run.", ge=1)


class RunRecord(CellKey):
    """One finished (or failed) run as stored in the leaderboard."""

    score_opt: float | None = Field(None, description="Oracle-normalized score R / R_opt.")
    score_random: float | None = Field(
        None, description="Random-normalized score (R - R_random) / (R_opt - R_random)."
    )
    raw_return: float | None = Field(None, description="Mean raw episode return R.")
    success: float | None = Field(None, description="Fraction of episodes that succeeded.")
    bound_flag: bool = Field(
        False, description="True when R_opt is not an exact optimum (a certified upper bound "
        "on a grid world, the scripted expert's return on an arm world)."
    )
    wall_time_s: float = Field(0.0, description="Wall-clock seconds the run took.", ge=0)
    autoworld_version: str = Field("", description="autoworld version that produced the run.")
    torch_version: str = Field("", description="torch version that produced the run.")
    status: Status = Field("finished", description="finished, or failed (retried on resume).")
    error: str = Field("", description="Error message of a failed run, else empty.")
    created_at: str = Field(
        default_factory=_now,
        description="UTC time the row was written (ISO 8601).",
    )
    note: str = Field("", description="What a reader of the score should know, e.g. that BC "
                      "had no oracle demonstrations to clone on this world; else empty.")
    initial_score: float | None = Field(None, description="R / R_opt of the untrained policy "
                                        "the run started from (its gain is score_opt minus "
                                        "this), when the method reports it.")
    env_steps: int | None = Field(None, ge=0, description="Env-steps the run spent (at most "
                                  "its budget ``steps``; BC's cloning spends none), when "
                                  "recorded (stores written before it have none).")
    num_envs: int | None = Field(None, ge=1, description="Parallel envs the bench gave the "
                                 "run, when recorded (PPO takes fewer when one rollout of them "
                                 "would not fit the budget).")
    device: str = Field("", description="Torch device the run trained on ('' when not "
                        "recorded).")

    @property
    def key(self) -> CellKey:
        return CellKey(method=self.method, world=self.world, seed=self.seed, steps=self.steps)


def versions() -> dict[str, str]:
    """The versions recorded with every run."""
    import torch

    from autoworld import __version__

    return {"autoworld_version": __version__, "torch_version": str(torch.__version__)}


class RunStore:
    """The SQLite leaderboard at ``path`` (created on first use).

    A connection is opened per operation, so one ``RunStore`` may be used from any thread, and
    each process that writes simply makes its own.

    Example:
        >>> store = RunStore(tmp_path / "lb.db")              # doctest: +SKIP
        >>> store.record(RunRecord(method="ppo", world="Empty-6x6", seed=0, steps=1000,
        ...                        score_opt=0.9))           # doctest: +SKIP
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"--db: {self.path} is a directory; give a file path like lb.db")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            mode = self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            if str(mode).lower() != "wal":  # e.g. a network file system without shared memory
                raise StoreError(f"{self.path}: SQLite could not enable WAL mode (got {mode})")
            self._retry(lambda: conn.executescript(_SCHEMA))
            have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
            for name, kind in _ADDED_COLUMNS:  # a store written before runs had them
                if name in have:
                    continue
                try:
                    self._retry(lambda name=name, kind=kind: conn.execute(
                        f"ALTER TABLE runs ADD COLUMN {name} {kind}"))
                except sqlite3.OperationalError as exc:  # another process added it first
                    if "duplicate column" not in str(exc):
                        raise
            conn.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    # -- connections -----------------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the leaderboard database ({exc})") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: database error ({exc}); is it a leaderboard "
                             "file written by `autoworld bench`?") from exc
        finally:
            conn.close()

    @staticmethod
    def _retry(fn: Callable[[], T], attempts: int = 20) -> T:
        """Run ``fn``, retrying on 'database is locked' (schema setup races on a fresh file)."""
        for i in range(attempts):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or i == attempts - 1:
                    raise
                time.sleep(0.05 * (i + 1))
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken with ``BEGIN IMMEDIATE`` (the write lock up front)."""
        with self._connect() as conn:
            self._retry(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- writes ----------------------------------------------------------------------------

    def record(self, run: RunRecord, session: SessionTick | None = None) -> None:
        """Write one run in its own transaction. A finished run replaces a failed one for the
        same cell; a failed run never overwrites a finished one. ``session`` updates a bench
        session's wall time in the same transaction (see :meth:`open_session`)."""
        self.record_many([run], session)

    def record_many(self, runs: Iterable[RunRecord], session: SessionTick | None = None) -> None:
        """Write several runs in one transaction (all or none)."""
        placeholders = ", ".join("?" for _ in _COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[4:])
        sql = (
            f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({placeholders}) "
            f"ON CONFLICT(method, world, seed, steps) DO UPDATE SET {updates} "
            "WHERE runs.status != 'finished' OR excluded.status = 'finished'"
        )
        runs = list(runs)
        with self.transaction() as conn:  # rows are built inside: an error rolls back all
            conn.executemany(sql, (tuple(_to_sql(run)[c] for c in _COLUMNS) for run in runs))
            if session is not None:
                conn.execute(
                    "UPDATE bench_sessions SET wall_s = ?, cells = cells + ?, updated_at = ? "
                    "WHERE id = ?", (session.wall_s, len(runs), _now(), session.id))

    def open_session(self, info: dict[str, object] | None = None) -> int:
        """Start a bench session (one ``autoworld bench`` call with cells to run) and return its
        id. Every run recorded with a :class:`SessionTick` of it moves its wall time and cell
        count on in the same transaction, so a killed bench keeps its time up to its last
        finished cell, and a grid filled over several resumed calls has a measured total
        (:meth:`sessions`)."""
        with self.transaction() as conn:
            now = _now()
            cur = conn.execute(
                "INSERT INTO bench_sessions(started_at, updated_at, info) VALUES (?, ?, ?)",
                (now, now, json.dumps(info or {}, sort_keys=True)))
            return int(cur.lastrowid)

    # -- reads -----------------------------------------------------------------------------

    def runs(self, status: Status | None = "finished") -> list[RunRecord]:
        """Stored runs (finished ones by default), ordered by method, world, seed, steps."""
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        with self._connect() as conn:
            cur = conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM runs {where} "
                "ORDER BY method, world, seed, steps", args
            )
            return [_from_sql(dict(zip(_COLUMNS, row, strict=True))) for row in cur]

    def finished_keys(self) -> set[CellKey]:
        """The cells that are done (the bench skips them)."""
        with self._connect() as conn:
            cur = conn.execute(
                "SELECT method, world, seed, steps FROM runs WHERE status = 'finished'"
            )
            return {CellKey(method=m, world=w, seed=s, steps=n) for m, w, s, n in cur}

    def sessions(self) -> list[dict[str, object]]:
        """The bench sessions in order: id, started_at, updated_at, wall_s (until the last run
        it recorded), cells and info (backend, workers, device, host)."""
        with self._connect() as conn:
            cur = conn.execute("SELECT id, started_at, updated_at, wall_s, cells, info "
                               "FROM bench_sessions ORDER BY id")
            return [{"id": i, "started_at": a, "updated_at": u, "wall_s": w, "cells": c,
                     "info": json.loads(info)} for i, a, u, w, c, info in cur]

    def count(self, status: Status | None = "finished") -> int:
        """Number of stored runs with ``status`` (all runs when None)."""
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        with self._connect() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM runs {where}", args).fetchone()[0])


def _to_sql(run: RunRecord) -> dict[str, object]:
    data = run.model_dump()
    data["bound_flag"] = int(run.bound_flag)
    return data


def _from_sql(row: dict[str, object]) -> RunRecord:
    row["bound_flag"] = bool(row["bound_flag"])
    return RunRecord.model_validate(row)
