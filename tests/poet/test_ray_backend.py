"""The Ray backend on a local Ray instance (2 CPUs) returns exactly what the local one does,
and still does when a worker process dies in the middle of a task (the task is retried)."""

from __future__ import annotations

import json

import pytest
import torch

from autoworld.envs.catalogue import load_world
from autoworld.learners.evaluation import oracle_values
from autoworld.poet.executor import LocalExecutor, SerialExecutor, make_executor
from autoworld.poet.policy import PoetPolicy
from autoworld.poet.rollout import EsJob, EvalJob, WorldEntry


def _worlds(names=("Empty-6x6", "SlipperyDeceptive-7x7")) -> dict[str, WorldEntry]:
    out = {}
    for key, name in zip(("w0", "w1"), names, strict=True):  # SlipperyDeceptive: stochastic
        spec = load_world(name)
        out[key] = WorldEntry(spec, *oracle_values(spec, "validation"))
    return out


def _jobs(policy: PoetPolicy):
    es, ev = [], []
    for i, w in enumerate(("w0", "w1", "w1")):
        th = policy.init(i)
        z = torch.zeros_like(th)
        es.append(EsJob(f"a{i}", w, th, z, z.clone(), 0, 0.1, 0.05, 100 + i, train_levels=16))
        ev.append(EvalJob(f"a{i}", "w1" if w == "w0" else "w0", th, 200 + i))
    return es, ev


def _run(executor, worlds, policy):
    es, ev = _jobs(policy)
    res = executor.es_steps(worlds, es, 8, 2, 0.01)
    scores = executor.evaluate(worlds, ev, 1, 5)
    return [(r.theta, r.m, r.v, r.t, r.mean_return) for r in res], scores


def _same(a, b) -> None:
    (ra, sa), (rb, sb) = a, b
    assert sa == sb
    for x, y in zip(ra, rb, strict=True):
        for u, v in zip(x, y, strict=True):
            if isinstance(u, torch.Tensor):
                assert torch.equal(u, v)
            else:
                assert u == v


@pytest.mark.parametrize("names", [
    ("Empty-6x6", "SlipperyDeceptive-7x7"),  # a full grid and a 5 x 5 egocentric view
    # two egocentric sides: in one engine the 5 x 5 view sits inside the batch's 7 x 7 window,
    # alone it is the whole image; the agent's input must be the same either way
    ("DoorKey-8x8", "SlipperyDeceptive-7x7"),
    # and the noise of a view's filters (random_mask, symbol_noise) too
    ("DoorKey-8x8", "Checkpoints-9x9"), ("DoorKey-8x8", "NoisyMaze-9x9"),
])
def test_results_do_not_depend_on_how_jobs_are_batched(names):
    policy = PoetPolicy(11, 2, 8)
    worlds = _worlds(names)
    _same(_run(LocalExecutor(policy), worlds, policy), _run(SerialExecutor(policy), worlds,
                                                            policy))


def test_serial_executor_keeps_every_pairs_engine():
    """The pair-after-pair baseline does not rebuild engines in turn (a fair speed baseline)."""
    policy = PoetPolicy(11, 2, 8)
    names = ("Empty-6x6", "SlipperyDeceptive-7x7", "DoorKey-8x8", "IceRink-9x9", "Sokoban-7x7",
             "MirrorLava-9x9")
    worlds = {f"w{i}": WorldEntry(load_world(n), [], []) for i, n in enumerate(names)}
    jobs = []
    for i in range(len(names)):
        th = policy.init(i)
        z = torch.zeros_like(th)
        jobs.append(EsJob(f"a{i}", f"w{i}", th, z, z.clone(), 0, 0.1, 0.05, i, train_levels=8))
    ex = SerialExecutor(policy)
    ex.es_steps(worlds, jobs, 4, 1, 0.0)
    first = {id(e) for e in ex.runner._engines.values()}
    ex.es_steps(worlds, jobs, 4, 1, 0.0)
    assert len(first) == len(names)
    assert {id(e) for e in ex.runner._engines.values()} == first


@pytest.mark.slow
def test_ray_backend_matches_local(tmp_path):
    ray = pytest.importorskip("ray")
    policy = PoetPolicy(11, 2, 8)
    worlds = _worlds()
    local = _run(LocalExecutor(policy), worlds, policy)
    ex = make_executor("ray", policy, num_cpus=2)
    try:
        _same(local, _run(ex, worlds, policy))
        # a whole (tiny) POET run gives the same metrics on both backends
        from autoworld.poet.config import PoetConfig
        from autoworld.poet.loop import WALL_CLOCK_FIELDS, PoetRun

        cfg = dict(iterations=2, population=8, episodes=1, eval_episodes=1, hidden=8,
                   validation_levels=2, tensorboard=False, gifs=False, reproduce_every=50,
                   transfer_every=50, train_levels=16)
        lines = []
        for backend, executor in (("local", None), ("ray", ex)):
            run = PoetRun(PoetConfig(**cfg, backend=backend), tmp_path / backend,
                          executor=executor)
            run.run()
            recs = [json.loads(x) for x in (tmp_path / backend / "metrics.jsonl")
                    .read_text().splitlines()]
            lines.append([{k: v for k, v in r.items() if k not in WALL_CLOCK_FIELDS}
                          for r in recs])
        assert lines[0] == lines[1]
    finally:
        ex.close()
        assert not ray.is_initialized()


@pytest.mark.slow
def test_ray_backend_survives_a_worker_dying(tmp_path):
    """The first attempt of every ES and scoring task kills its worker process (``os._exit``
    after leaving a marker file); Ray re-runs the tasks on fresh workers and the results equal
    the local backend's."""
    ray = pytest.importorskip("ray")
    from autoworld.poet import executor as executor_mod

    policy = PoetPolicy(11, 2, 8)
    worlds = _worlds()
    local = _run(LocalExecutor(policy), worlds, policy)
    marks = tmp_path / "attempts"
    marks.mkdir()

    def dying(fn):
        def task(*args):
            import os
            import uuid

            # each first attempt of a job kills its worker; the retry finds the marker
            job = fn.__name__ + "-" + "-".join(j.agent for j in args[3])
            if not (marks / job).exists():
                (marks / job).write_text(str(os.getpid()))
                os._exit(1)
            (marks / f"{job}.retry-{uuid.uuid4().hex}").write_text(str(os.getpid()))
            return fn(*args)

        return task

    ex = make_executor("ray", policy, num_cpus=2)
    try:
        assert ex.max_retries >= 1
        ex._es = ex.task(dying(executor_mod._remote_es))
        ex._eval = ex.task(dying(executor_mod._remote_eval))
        _same(local, _run(ex, worlds, policy))
    finally:
        ex.close()
    killed = [p for p in marks.iterdir() if ".retry-" not in p.name]
    retried = [p for p in marks.iterdir() if ".retry-" in p.name]
    # 3 ES tasks (one per pair) and 1 scoring chunk, each killed once and re-run once
    assert len(killed) == 4 and len(retried) == 4
    for k in killed:  # the retry ran in another process than the one that died
        (r,) = [p for p in retried if p.name.startswith(k.name + ".retry-")]
        assert r.read_text() != k.read_text()
    assert not ray.is_initialized()


def test_ppo_steps_are_batched_without_mixing_pairs():
    from autoworld.learners.ppo import PPOConfig

    policy = PoetPolicy(11, 2, 8, value_head=True)
    worlds = _worlds()
    cfg = PPOConfig(num_envs=4, num_steps=16, num_minibatches=2, update_epochs=2)
    jobs = []
    for i, w in enumerate(("w0", "w1")):
        th = policy.init(i)
        z = torch.zeros_like(th)
        jobs.append(EsJob(f"a{i}", w, th, z, z.clone(), 0, 0.1, 1e-3, 7 + i, train_levels=16))
    batched = LocalExecutor(policy).ppo_steps(worlds, jobs, cfg)
    serial = SerialExecutor(policy).ppo_steps(worlds, jobs, cfg)
    for a, b, job in zip(batched, serial, jobs, strict=True):
        assert a.t == b.t == 2 * 2  # epochs x minibatches Adam steps
        torch.testing.assert_close(a.theta, b.theta, rtol=1e-5, atol=1e-6)
        assert not torch.equal(a.theta, job.theta)  # it learned something
