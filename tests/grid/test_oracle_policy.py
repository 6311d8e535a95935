"""The oracle's optimal closed-loop policy: it answers every state the engine reaches, replays
the plans of deterministic worlds action for action, and earns the optimal expected return in
stochastic ones."""

from __future__ import annotations

import math

import torch

from autoworld.envs.catalogue import load_world
from autoworld.envs.grid.engine import GridEngine
from autoworld.envs.grid.level import LevelBank
from autoworld.envs.grid.levels import bank
from autoworld.envs.grid.oracle import solve_many


def _levels(name: str, n: int):
    spec = load_world(name)
    b = bank(spec, "train")
    return spec, [b.level(i) for i in range(n)]


def _rollout(spec, levels, pol, level_ids, seed: int = 0):
    """Actions and returns of the policy acting in the engine until every episode ends."""
    K = len(level_ids)
    eng = GridEngine(spec, num_envs=K, seed=seed, banks=[LevelBank.from_levels(levels)],
                     final_obs=False)
    eng.reset(level_ids=torch.tensor(level_ids))
    live = torch.ones(K, dtype=torch.bool)
    total = torch.zeros(K, dtype=torch.float64)
    actions = []
    while bool(live.any()):
        act = pol.actions(eng.state, live)
        actions.append(torch.where(live, act, -1))
        _, reward, terminated, truncated, _ = eng.step(act)
        total += torch.where(live, reward.double(), 0.0)
        live &= ~(terminated | truncated)
    return torch.stack(actions), total


def test_policy_replays_the_plans_of_a_deterministic_world():
    spec, levels = _levels("DoorKey-8x8", 3)
    pols: list = []
    results = solve_many(spec, levels, plan=True, policy_out=pols)
    plain = solve_many(spec, levels, plan=True)  # the same results either way
    assert [r.model_dump(exclude={"seconds"}) for r in results] == [
        r.model_dump(exclude={"seconds"}) for r in plain]
    actions, total = _rollout(spec, levels, pols[0], [0, 1, 2])
    for k, res in enumerate(results):
        taken = actions[:, k][actions[:, k] >= 0].tolist()
        assert taken == res.plan
        assert math.isclose(float(total[k]), res.optimal_return, rel_tol=1e-5)


def test_policy_earns_the_optimal_expected_return_in_a_stochastic_world():
    spec, levels = _levels("SlipperyDeceptive-7x7", 2)
    pols: list = []
    results = solve_many(spec, levels, policy_out=pols)
    assert results[0].stochastic and results[0].plan is None and len(pols) == 1
    n = 512
    _, total = _rollout(spec, levels, pols[0], [0] * n + [1] * n, seed=3)
    for k, res in enumerate(results):
        got = total[k * n:(k + 1) * n]
        se = float(got.std()) / math.sqrt(n)
        assert abs(float(got.mean()) - res.optimal_return) <= 4 * se + 1e-6, (k, got.mean())
