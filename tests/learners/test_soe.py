"""The SOE framework: selection rules, ES/CEM/GA operators on toy objectives, the batched
population evaluator, the loop's budget, and behaviour cloning on oracle demonstrations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autoworld.envs.catalogue import load_world
from autoworld.envs.grid.engine import GridEngine
from autoworld.learners import soe
from autoworld.learners.cem import CEMConfig, CEMOperator
from autoworld.learners.es import ESConfig, ESOperator, antithetic_noise, es_gradient
from autoworld.learners.genetic import GAConfig, MutationOperator
from autoworld.learners.policies import PolicyConfig, policy_from_spec

TINY = PolicyConfig(trunk="mlp", embed_dim=2, hidden=16)


def cand(ret, success=0.0, cost=0.0):
    return soe.Candidate(ret=ret, success=success, cost=cost)


# ====================================================================== selection
def test_select_best_is_stable_top_k():
    pool = [cand(1.0), cand(3.0), cand(2.0), cand(3.0)]
    assert soe.select_best(pool, 2) == [pool[1], pool[3]]


def test_pareto_front_and_ranks_on_hand_made_points():
    pts = np.array([
        [1.0, 1.0],  # 0: dominated by 2
        [3.0, 0.0],  # 1: front
        [2.0, 2.0],  # 2: front
        [0.0, 3.0],  # 3: front
        [2.0, 2.0],  # 4: equal to 2, so not dominated: front
        [0.5, 0.5],  # 5: dominated by 0 too: rank 2
    ])
    assert soe.pareto_front(pts) == [1, 2, 3, 4]
    assert soe.pareto_ranks(pts).tolist() == [1, 0, 0, 0, 0, 2]
    assert soe.dominates([2, 2], [1, 1]) and not soe.dominates([2, 2], [2, 2])


def test_select_pareto_uses_return_success_and_cost():
    a = cand(0.9, success=0.5, cost=50)  # best return
    b = cand(0.5, success=0.9, cost=50)  # best success
    c = cand(0.4, success=0.4, cost=10)  # cheapest
    d = cand(0.3, success=0.3, cost=60)  # dominated by everyone
    chosen = soe.select_pareto([d, c, b, a], 3)
    assert chosen == [a, b, c]  # the front, ordered by return
    assert soe.select_pareto([d, c, b, a], 4)[-1] is d


def test_select_tournament_with_seeded_rng():
    pool = [cand(float(r)) for r in [5, 1, 4, 2, 3, 0]]
    got = soe.select_tournament(pool, 4, size=2, rng=np.random.default_rng(7))
    rng = np.random.default_rng(7)
    expected = []
    for _ in range(4):
        entrants = rng.choice(len(pool), size=2, replace=False)
        expected.append(pool[max(entrants, key=lambda i: pool[i].ret)])
    assert got == expected
    # a tournament over the whole pool always returns the best
    assert soe.select_tournament(pool, 3, size=6, rng=np.random.default_rng(0)) == [pool[0]] * 3


# ====================================================================== ES
def test_antithetic_pairs_and_centred_ranks():
    noise = antithetic_noise(3, 5, torch.Generator().manual_seed(0))
    assert noise.shape == (6, 5)
    assert torch.equal(noise[0::2], -noise[1::2])
    ranks = soe.centred_ranks(torch.tensor([10.0, -1.0, 3.0, 7.0, 100.0]))
    assert ranks.tolist() == [0.25, -0.5, -0.25, 0.0, 0.5]
    tied = soe.centred_ranks(torch.tensor([1.0, 2.0, 2.0, 3.0]))
    assert tied.tolist() == pytest.approx([-0.5, 0.0, 0.0, 0.5])
    assert float(ranks.sum()) == pytest.approx(0.0)


def test_es_gradient_points_uphill_on_a_linear_objective():
    gen = torch.Generator().manual_seed(1)
    noise = antithetic_noise(200, 4, gen)
    w = torch.tensor([1.0, -2.0, 0.0, 3.0])
    grad = es_gradient(noise.double(), noise.double() @ w.double(), sigma=0.1)
    cos = torch.nn.functional.cosine_similarity(grad.float(), w, dim=0)
    assert cos > 0.9


def _toy_loop(op, target, gens):
    for _ in range(gens):
        props = op.propose([])
        for c in props:
            c.ret = -float(((c.params - target) ** 2).sum())
        op.update(props)


def test_es_operator_climbs_a_toy_objective():
    target = torch.tensor([1.0, -1.0, 0.5])
    op = ESOperator(torch.zeros(3), ESConfig(population=20, sigma=0.1, lr=0.05,
                                             weight_decay=0.0), seed=0)
    _toy_loop(op, target, 150)
    assert float((op.theta - target).norm()) < 0.15


def test_cem_operator_climbs_a_toy_objective():
    target = torch.tensor([2.0, -1.0])
    config = CEMConfig(population=30, init_std=1.0, extra_std=0.2, extra_decay=0.95)
    op = CEMOperator(torch.zeros(2), config, seed=0)
    _toy_loop(op, target, 60)
    assert float((op.mean - target).norm()) < 0.05
    assert float(op.std.max()) < 0.2  # the search narrows once it has arrived


def test_mutation_operator_keeps_the_elite_and_the_population_size():
    parents = [soe.Candidate(params=torch.full((4,), float(i)), ret=float(i)) for i in range(3)]
    op = MutationOperator(GAConfig(population=6, elites=1, sigma=0.1), seed=0)
    children = op.propose(parents)
    assert len(children) == 6 and op.generational
    assert torch.equal(children[0].params, parents[2].params)  # the best parent, unchanged
    assert all(c.parent in {p.uid for p in parents} for c in children)
    assert not any(torch.equal(c.params, p.params) for c in children[1:] for p in parents)


# ====================================================================== evaluation and loop
def _tiny_policy(spec):
    torch.manual_seed(0)
    return policy_from_spec(GridEngine(spec, final_obs=False).observation_spec(), TINY)


def test_population_evaluator_batches_members_like_single_policies():
    spec = load_world("Empty-6x6")
    policy = _tiny_policy(spec)
    theta = soe.flat_params(policy)
    gen = torch.Generator().manual_seed(0)
    pop = theta[None] + 0.5 * torch.randn(3, theta.numel(), generator=gen)
    pop[2] = pop[0]
    ev = soe.PopulationEvaluator(spec, policy, episodes=4, greedy=True)
    batched = ev(pop, seed=5)
    assert batched.ret[0] == batched.ret[2]  # same weights, same levels, greedy: same returns
    looped = soe.PopulationEvaluator(spec, policy, episodes=4, greedy=True)
    looped._vmap_ok = False
    assert looped(pop, seed=5) == batched
    for m in range(3):  # each member alone gives its slice of the batched result
        alone = soe.PopulationEvaluator(spec, policy, episodes=4, greedy=True)(pop[m:m + 1], 5)
        assert alone.ret[0] == pytest.approx(batched.ret[m])


def test_checking_for_ended_episodes_less_often_changes_nothing(monkeypatch):
    """On a GPU the evaluator checks every 8 steps whether all episodes ended (a check waits for
    the device): the steps run past the last end are not counted, so the returns, the env-steps
    spent and a whole budgeted search are the same as checking every step."""
    from autoworld.learners.bc import BCConfig, clone, collect_demonstrations
    from autoworld.learners.methods import METHODS

    spec = load_world("Empty-6x6")
    policy = _tiny_policy(spec)  # cloned from the oracle: its episodes end in a few steps
    clone(policy, collect_demonstrations(spec, levels=8), BCConfig(epochs=60))
    theta = soe.flat_params(policy)
    pop = theta[None] + 0.01 * torch.randn(4, theta.numel(), generator=torch.Generator()
                                           .manual_seed(1))
    every, lagged = (soe.PopulationEvaluator(spec, policy, episodes=3, greedy=True)
                     for _ in range(2))
    lagged.check_every = 8
    for seed, budget in ((5, None), (6, None), (7, 30)):  # the last fitted to a budget
        assert lagged(pop, seed, budget) == every(pop, seed, budget)
        assert every._longest % 8 and lagged._longest == every._longest  # ended early
    runs = []
    for check in (1, 8):
        init = soe.PopulationEvaluator.__init__

        def patched(self, *a, check=check, init=init, **k):
            init(self, *a, **k)
            self.check_every = check

        monkeypatch.setattr(soe.PopulationEvaluator, "__init__", patched)
        runs.append(METHODS["es"].run("Empty-6x6", steps=3_000, num_envs=16, seed=0))
    a, b = (r.model_dump(exclude={"seconds"}) for r in runs)
    assert a == b


def test_soe_loop_spends_its_budget_and_keeps_the_best():
    spec = load_world("Empty-6x6")
    policy = _tiny_policy(spec)
    ev = soe.PopulationEvaluator(spec, policy, episodes=2, greedy=True)
    first = soe.Candidate(params=soe.flat_params(policy))
    ev.score([first], 0)
    pool = soe.Pool([first])
    op = MutationOperator(GAConfig(population=4, sigma=0.5), seed=0)
    logs = soe.soe_loop(pool, lambda c: soe.select_best(c, 2), op, ev.score, steps=1_000)
    # never past the budget, and the last generation (fitted to what was left) nearly fills it
    assert len(logs) > 1 and 900 <= logs[-1].env_steps <= 1_000, logs[-1]
    assert len(pool) == 4  # generational: the last generation
    assert logs[-1].best_return == max(c.ret for c in pool)


# ====================================================================== behaviour cloning
def test_bc_reaches_high_accuracy_on_oracle_demonstrations():
    from autoworld.envs.grid.levels import bank
    from autoworld.learners.bc import BCConfig, accuracy, clone, collect_demonstrations

    spec = load_world("Empty-6x6")
    demos = collect_demonstrations(spec, levels=16)
    assert demos.levels == 16 and demos.actions.shape[0] >= 16
    # the replayed plans earn what the oracle promised
    from autoworld.envs.grid.oracle import solve

    b = bank(spec, "train")
    opt = np.mean([solve(spec, b.level(i), plan=False).optimal_return for i in range(16)])
    assert demos.mean_return == pytest.approx(opt, abs=1e-5)
    policy = _tiny_policy(spec)
    before = accuracy(policy, demos)
    losses = clone(policy, demos, BCConfig(), seed=0)
    assert losses[-1] < losses[0]
    assert accuracy(policy, demos) >= 0.95 > before
    # a gradient-step budget cuts the epochs of a large set: ceil(N / 8) steps per epoch
    N = demos.actions.shape[0]
    capped = clone(_tiny_policy(spec), demos, BCConfig(batch_size=8, max_updates=3 * -(-N // 8)),
                   seed=0)
    assert len(capped) == 3 and len(losses) == BCConfig().epochs


def test_a_rollout_fits_the_budget_it_is_given():
    """``budget`` caps a population rollout: fewer episodes per member and a capped horizon,
    the same for every member; not one episode each raises BudgetExhausted."""
    spec = load_world("Empty-6x6")
    policy = _tiny_policy(spec)
    theta = soe.flat_params(policy)
    pop = theta[None] + 0.5 * torch.randn(3, theta.numel(), generator=torch.Generator()
                                          .manual_seed(0))
    ev = soe.PopulationEvaluator(spec, policy, episodes=4, greedy=True)
    full = ev(pop, seed=1)
    T = spec.max_steps
    assert full.env_steps <= 3 * 4 * T
    for budget in (3 * 4 * T - 1, 3 * 2 * T, 3 * T + 5):
        ev = soe.PopulationEvaluator(spec, policy, episodes=4, greedy=True)
        assert ev(pop, seed=1, budget=budget).env_steps <= budget
    # before any rollout an episode is taken to last max_steps
    with pytest.raises(soe.BudgetExhausted, match="3 candidates"):
        soe.PopulationEvaluator(spec, policy, episodes=4, greedy=True)(pop, 1, 3 * T - 1)
    # a horizon shorter than the last rollout's longest episode is capped, never passed
    ev = soe.PopulationEvaluator(spec, policy, episodes=4, greedy=True)
    ev(pop, seed=1)
    ev._longest = 3  # as if the last rollout's episodes had all ended within 3 steps
    assert ev(pop, seed=1, budget=3 * 4 * 3).env_steps <= 3 * 4 * 3
    # fitting uses the last rollout's longest episode: after a full rollout a budget that
    # holds it whole gives the same scores as no budget
    assert ev(pop, seed=1) == full
    assert ev(pop, seed=1, budget=full.env_steps) == full
    assert soe.fit_rollout(3, 4, None, None, T) == (4, T)
    assert soe.fit_rollout(3, 4, 3 * 4 * 10, 10, T) == (4, 10)
    assert soe.fit_rollout(3, 4, 3 * 2 * 10 + 5, 10, T) == (2, 10)
