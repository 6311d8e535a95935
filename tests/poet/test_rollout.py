"""The batched ES step's shortcuts change speed, not results: the factored antithetic
population equals its materialized rows, the gradient equals the learner's ES estimate, and
dropping ended episodes from the forward pass leaves every return unchanged."""

from __future__ import annotations

import pytest
import torch

from autoworld.envs.catalogue import load_world
from autoworld.learners.es import antithetic_noise, es_gradient
from autoworld.poet import rollout
from autoworld.poet.policy import Antithetic, PoetPolicy, take_units
from autoworld.poet.rollout import RolloutEngine, WorldEntry, antithetic_gradient


def _population(policy: PoetPolicy, J: int = 3, half: int = 4) -> Antithetic:
    center = torch.stack([policy.init(j) for j in range(J)])
    eps = torch.stack([torch.randn(half, policy.dim, generator=torch.Generator().manual_seed(j))
                       for j in range(J)])
    return Antithetic(center, eps, torch.tensor([0.1, 0.2, 0.05][:J]))


def test_antithetic_rows_follow_the_learner_layout():
    policy = PoetPolicy(7, 2, 8)
    pop = _population(policy)
    rows = pop.rows()
    for j in range(3):
        noise = antithetic_noise(4, policy.dim, torch.Generator().manual_seed(j))
        torch.testing.assert_close(rows[j * 8:(j + 1) * 8], pop.center[j] + pop.sigma[j] * noise)


@pytest.mark.parametrize("episodes", [1, 3])
def test_factored_forward_equals_materialized_rows(episodes):
    policy = PoetPolicy(7, 2, 8)
    pop = _population(policy)
    sym = torch.randint(0, 12, (pop.shape[0], episodes, 7, 7), dtype=torch.uint8)
    want = policy.logits(policy.unpack(pop.rows()), sym)
    got = policy.logits(policy.unpack(pop), sym)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # a subset of units (rows 2u, 2u+1), jobs with no unit left included
    units = torch.tensor([0, 3, 9])  # jobs 0, 0, 2 (job 1 has none)
    sub = take_units(policy.unpack(pop), units, 2, pop.unit_job())
    assert sub["w1_split"] == [2, 0, 1]
    rows = (units[:, None] * 2 + torch.arange(2)).reshape(-1)
    torch.testing.assert_close(policy.logits(sub, sym[rows]), want[rows], rtol=1e-5, atol=1e-5)


def test_antithetic_gradient_equals_es_gradient():
    gen = torch.Generator().manual_seed(1)
    noise = antithetic_noise(16, 9, gen)
    fitness = torch.randn(32, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(antithetic_gradient(noise[0::2].contiguous(), fitness, 0.1),
                               es_gradient(noise, fitness, 0.1).float())


def test_shrink_is_decided_per_job():
    job = torch.tensor([0, 0, 0, 0, 1, 1])
    live = torch.tensor([True, False, False, False, True, True])
    assert rollout._shrink(live, None, job).tolist() == [0, 4, 5]  # job 0: 1 of 4 running
    live = torch.tensor([True, True, True, False, True, True])
    assert rollout._shrink(live, None, job) is None  # 3 of 4 and 2 of 2: not yet
    live = torch.tensor([True, True, True, False, True, False])
    assert rollout._shrink(live, None, job).tolist() == [0, 1, 2, 3, 4]  # job 1: 1 of 2
    keep = torch.tensor([0, 1, 2, 3, 4])  # ended units already dropped stay dropped
    assert rollout._shrink(live, keep, job) is None


def test_dropping_ended_episodes_keeps_every_return(monkeypatch):
    spec = load_world("Empty-6x6")
    worlds = {"w": WorldEntry(spec, [], [])}
    policy = PoetPolicy(11, 2, 8)
    pop = _population(policy, J=2, half=16)
    R, E = pop.shape[0], 2
    levels = torch.arange(R * E) % 8
    keys = torch.arange(R * E, dtype=torch.long) * 7919 + 1

    def run(params):
        return RolloutEngine(policy).returns(worlds, ["w"] * R, params, E, levels, keys,
                                             "train", bank_size=8)

    calls = []
    take = rollout.take_units
    monkeypatch.setattr(rollout, "take_units", lambda *a: calls.append(1) or take(*a))
    dropped = run(pop), run(pop.rows())
    assert calls  # episodes did end and units were dropped
    monkeypatch.setattr(rollout, "_shrink", lambda *a: None)
    kept = run(pop), run(pop.rows())
    assert (dropped[0] != 0).any()  # some episodes reach the goal
    assert torch.equal(dropped[0], kept[0]) and torch.equal(dropped[1], kept[1])


def _es_results(executor, worlds, policy):
    from autoworld.poet.rollout import EsJob

    jobs = []
    for i, w in enumerate(worlds):
        th = policy.init(i)
        z = torch.zeros_like(th)
        jobs.append(EsJob(f"a{i}", w, th, z, z.clone(), 0, 0.1, 0.05, 10 + i, train_levels=8))
    first = executor.es_steps(worlds, jobs, 8, 2, 0.01)
    again = executor.es_steps(worlds, jobs, 8, 2, 0.01)  # replays the recorded engines
    return [(r.theta, r.mean_return) for r in first + again]


def _graphed_rollouts_match(worlds, device, emulate, monkeypatch):
    from autoworld.envs.grid.graphs import GraphedStep
    from autoworld.poet.executor import LocalExecutor

    policy = PoetPolicy(11, 2, 8)
    want = _es_results(LocalExecutor(policy, device, "components"), worlds, policy)
    if emulate:
        made = []
        build = rollout.make_engine

        def graphed(*a, **kw):
            eng = build(*a, **kw)
            for program in getattr(eng, "buckets", [eng]):
                program._graphed = GraphedStep(program, emulate=True)
                made.append(program)
            return eng

        monkeypatch.setattr(rollout, "make_engine", graphed)
    got = _es_results(LocalExecutor(policy, device, "components", cuda_graph=True), worlds,
                      policy)
    if emulate:
        assert made and all(p._graphed.recorded for p in made)
    for (ta, ra), (tb, rb) in zip(want, got, strict=True):
        assert torch.equal(ta, tb) and ra == rb


def test_poet_rollouts_through_replayed_steps_are_unchanged(monkeypatch):
    """POET's rollouts reset, pin env keys and step cached engines; replayed steps (emulated
    recording on CPU) give the same ES results."""
    worlds = {k: WorldEntry(load_world(n), [], []) for k, n in
              (("w0", "Empty-6x6"), ("w1", "SlipperyDeceptive-7x7"))}
    _graphed_rollouts_match(worlds, "cpu", True, monkeypatch)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_poet_rollouts_with_cuda_graphs_are_unchanged(monkeypatch):
    worlds = {k: WorldEntry(load_world(n), [], []) for k, n in
              (("w0", "Empty-6x6"), ("w1", "SlipperyDeceptive-7x7"))}
    _graphed_rollouts_match(worlds, "cuda", False, monkeypatch)


def _noise_job(seed: int):
    from autoworld.poet.rollout import EsJob

    theta = torch.zeros(50)
    return EsJob("a0", "w0", theta, theta.clone(), theta.clone(), 0, 0.1, 0.01, seed)


def test_es_noise_is_drawn_by_the_job_seed_on_the_cpu():
    """On CPU the noise is the CPU generator's for the job's seed (what every CPU result and
    checkpoint was made with): same seed, same noise; another seed, other noise."""
    from autoworld import rng

    job = _noise_job(7)
    want = torch.randn(4, 50, generator=torch.Generator().manual_seed(
        rng.derive_seed(7, "noise") & 0x7FFFFFFFFFFFFFFF))
    out = torch.empty(4, 50)
    rollout.es_noise(job, 4, out=out, device="cpu")
    assert torch.equal(out, want)
    assert not torch.equal(rollout.es_noise(_noise_job(8), 4), want)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_es_noise_is_drawn_on_the_rollout_device():
    """On CUDA the population's noise is drawn on the GPU (no host draw, no copy), the same for
    the same seed."""
    a = rollout.es_noise(_noise_job(7), 4, device="cuda")
    assert a.device.type == "cuda"
    assert torch.equal(a, rollout.es_noise(_noise_job(7), 4, device="cuda"))
    assert a.std().item() == pytest.approx(1.0, abs=0.2)


def test_egocentric_views_are_anchored_at_the_agent_whatever_the_batch():
    from autoworld.envs.grid.symbols import CELL
    from autoworld.poet.policy import PoetPolicy, ViewLayout

    pad = int(CELL.PAD)
    img = (torch.arange(49) + pad + 1).to(torch.uint8).reshape(1, 7, 7)  # agent at (6, 3)
    # a smaller input keeps the cells around the agent (the bottom rows, centred columns)
    small = PoetPolicy(5, 2, 4).fit_view(img, ViewLayout(torch.tensor([True]), True, 7))
    assert torch.equal(small[0], img[0, 2:7, 1:6])
    # a larger one puts the view at its bottom centre, PAD around it
    big = PoetPolicy(11, 2, 4).fit_view(img, ViewLayout(torch.tensor([True]), True, 7))
    assert torch.equal(big[0, 4:11, 2:9], img[0]) and int((big == pad).sum()) == 121 - 49
    # full-grid envs of the same batch stay anchored at the top-left
    two = torch.cat([img, img])
    mixed = PoetPolicy(11, 2, 4).fit_view(two, ViewLayout(torch.tensor([True, False]), False, 7))
    assert torch.equal(mixed[0], big[0]) and torch.equal(mixed[1, :7, :7], img[0])
    assert torch.equal(PoetPolicy(11, 2, 4).fit_view(two)[1], mixed[1])  # no layout: top-left
