"""Every registered learning method improves over its initial policy on a small easy world within
a small budget (fixed seeds); runs write their files; `autoworld methods --json` lists them."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from autoworld.learners.methods import (
    METHODS,
    MethodError,
    MethodOptions,
    MethodResult,
    get_method,
    grid_methods,
)
from autoworld.learners.policies import PolicyConfig

TINY = PolicyConfig(trunk="mlp", embed_dim=2, channels=4, hidden=16)

# Per method: world, env-step budget, envs, population. BC methods need oracle plans (a
# deterministic world with a small state space); the coverage torus pays a dense reward, so a
# tiny budget separates a learned policy from the initial one.
BUDGETS = {
    "ppo": ("TorusCoverage-7x7", 16_384, 32, None),
    "ppo-pbt": ("TorusCoverage-7x7", 32_768, 32, 2),
    "es": ("TorusCoverage-7x7", 30_000, 72, 8),
    "es-pareto": ("TorusCoverage-7x7", 30_000, 72, 8),
    "cem": ("TorusCoverage-7x7", 30_000, 72, 8),
    "ga": ("TorusCoverage-7x7", 30_000, 72, 8),
    "ga-tournament": ("TorusCoverage-7x7", 30_000, 72, 8),
    "ga-pareto": ("TorusCoverage-7x7", 30_000, 72, 8),
    "bc": ("Empty-6x6", 0, 32, None),
    "bc+ppo": ("Empty-6x6", 4_096, 32, None),
}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: more threads only contend
    yield
    torch.set_num_threads(before)


def test_registry_has_eight_methods_with_fields():
    assert len(METHODS) >= 8
    assert set(BUDGETS) == set(grid_methods()), "give every grid method a test budget"
    assert {m.family for m in METHODS.values()} <= {"grid", "arm"}
    for name, spec in METHODS.items():
        assert spec.name == name
        assert spec.selection in ("best", "pareto", "tournament")
        assert spec.optimization and spec.component and spec.description
    assert {s.selection for s in METHODS.values()} == {"best", "pareto", "tournament"}
    with pytest.raises(MethodError, match="unknown method"):
        get_method("no-such-method")


@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_method_improves_over_initial_policy(name):
    world, steps, num_envs, population = BUDGETS[name]
    options = MethodOptions(policy=TINY, eval_episodes=4, population=population, bc_levels=64)
    res = METHODS[name].run(world, steps=steps, num_envs=num_envs, seed=0, options=options)
    assert res.method == name and res.world == world
    assert res.score > res.initial_score + 0.05, res
    if name != "bc":  # the budget is a cap that the last rollout or generation nearly fills
        assert 0.9 * steps <= res.env_steps <= steps, res.env_steps
    if name.startswith("bc"):
        key = "accuracy" if name == "bc" else "bc_accuracy"
        assert res.extra[key] > 0.95


def test_run_dir_holds_metrics_result_and_policy(tmp_path):
    options = MethodOptions(policy=TINY, eval_episodes=2, population=4)
    res = METHODS["ga"].run("TorusCoverage-7x7", steps=3_000, num_envs=20, seed=1,
                            run_dir=tmp_path, options=options)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == res.extra["generations"] >= 1
    assert json.loads(lines[-1])["env_steps"] > 0
    assert json.loads((tmp_path / "result.json").read_text())["score"] == res.score
    assert (tmp_path / "policy.safetensors").is_file()
    sidecar = json.loads((tmp_path / "policy.json").read_text())
    assert sidecar["method"] == "ga"


def test_weight_space_runs_are_deterministic():
    options = MethodOptions(policy=TINY, eval_episodes=1, population=4)
    a, b = (METHODS["es"].run("TorusCoverage-7x7", steps=1_000, num_envs=10, seed=3,
                              options=options) for _ in range(2))
    assert a.score == b.score and a.env_steps == b.env_steps


# ====================================================================== adaptive selection
def test_summarize_best_fixed_upper_bound_and_gains_by_hand():
    from autoworld.learners.adaptive import summarize

    scores = {"A": {"m1": 0.9, "m2": 0.1}, "B": {"m1": 0.2, "m2": 0.8},
              "C": {"m1": 0.6, "m2": 0.5}}
    initial = {w: {"m1": 0.1, "m2": 0.1} for w in scores}
    rep = summarize(scores, initial, budget=10)
    assert rep.best_fixed_method == "m1"
    assert rep.best_fixed_score == pytest.approx((0.9 + 0.2 + 0.6) / 3)
    assert rep.upper_bound_score == pytest.approx((0.9 + 0.8 + 0.6) / 3)
    by_n = {g.worlds: g for g in rep.gains}
    assert set(by_n) == {1, 3}
    assert by_n[1].best_fixed_gain == pytest.approx(by_n[1].upper_bound_gain)
    assert by_n[1].upper_bound_gain == pytest.approx((0.8 + 0.7 + 0.5) / 3)
    assert by_n[3].best_fixed_gain == pytest.approx((0.8 + 0.1 + 0.5) / 3)
    assert by_n[3].upper_bound_gain == pytest.approx((0.8 + 0.7 + 0.5) / 3)
    assert "hindsight upper bound" in rep.to_markdown()


def test_successive_halving_drops_methods_that_cannot_run_and_keeps_the_budget():
    from autoworld.learners.adaptive import successive_halving

    options = MethodOptions(policy=TINY, eval_episodes=1, population=4)
    res = successive_halving("TorusCoverage-7x7", ["ga", "bc", "es"], 6_000, num_envs=10,
                             options=options)
    first, last = res.rounds[0], res.rounds[-1]
    assert len(res.rounds) == 2 and first.steps == 1_000
    # the last round gets what the first left: bc could not run, and the others stopped at
    # their last whole generation within their share
    assert 0 < first.env_steps <= 2 * first.steps and last.steps == (6_000 - first.env_steps) // 2
    assert first.scores["bc"] == float("-inf") and "bc" not in first.survivors
    assert res.chosen == max(last.scores, key=last.scores.get) == last.survivors[0]
    assert res.result.method == res.chosen and res.result.test_score is not None
    assert res.env_steps == first.env_steps + last.env_steps
    # no run passes its share, so the selector keeps within its budget (and nearly fills it)
    assert 5_000 <= res.env_steps <= 6_000, res.env_steps
    assert all(r.env_steps <= r.steps * len(r.scores) for r in res.rounds)


def test_methods_cli_json_lists_methods():
    from autoworld.cli.app import app

    result = CliRunner().invoke(app, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) >= 8
    assert {r["name"] for r in rows} == set(METHODS)
    for r in rows:
        assert {"selection", "optimization", "component", "description"} <= set(r)
    table = CliRunner().invoke(app, ["methods"])
    assert table.exit_code == 0 and "es-pareto" in table.output


def test_bc_without_oracle_plans_keeps_its_policy_and_bc_ppo_runs_ppo():
    """Where the oracle solves no training level within the state cap (the coverage torus: its
    state holds every visited cell) there is nothing to imitate: BC returns its initial policy
    (no env-steps) and BC+PPO trains PPO from scratch, each saying why in the result, so that a
    leaderboard over every world has these cells instead of failures."""
    options = MethodOptions(policy=TINY, eval_episodes=1)
    bc = METHODS["bc"].run("TorusCoverage-7x7", steps=1_000, num_envs=8, seed=0,
                           options=options)
    assert "state" in bc.extra["no_demonstrations"]
    assert bc.env_steps == 0 and bc.score == pytest.approx(bc.initial_score)
    both = METHODS["bc+ppo"].run("TorusCoverage-7x7", steps=512, num_envs=8, seed=0,
                                 options=options)
    assert "state" in both.extra["no_demonstrations"] and both.env_steps >= 512
    assert "bc_accuracy" not in both.extra


def test_bc_imitates_the_oracle_policy_in_a_stochastic_world():
    """A stochastic world has no plans; BC clones the oracle's optimal policy acting in the
    engine, and the clone scores far above its initial policy."""
    options = MethodOptions(policy=TINY, eval_episodes=2)
    res = METHODS["bc"].run("FrozenLakeWith-90613d-6x6", steps=1_000, num_envs=8, seed=0,
                            options=options)
    assert res.extra["levels"] >= 32 and res.extra["accuracy"] > 0.8
    assert res.score > res.initial_score + 0.3


def test_halving_never_starves_a_round_below_its_nominal_share(monkeypatch):
    from autoworld.learners import adaptive

    asked: list[int] = []

    class Overshooter:
        """Spends three times its share (a whole-rollout rounding at a tiny share)."""

        def __init__(self, name: str, score: float) -> None:
            self.name, self.score = name, score

        def run(self, world, steps, num_envs, seed, device, options):
            asked.append(steps)
            return MethodResult(method=self.name, world="Empty-6x6", seed=seed, steps=steps,
                                env_steps=3 * steps, initial_score=0.0, score=self.score,
                                normalized_gain=0.0, mean_return=0.0, success=0.0,
                                test_score=self.score, initial_test_score=0.0, seconds=0.0)

    fake = {f"m{i}": Overshooter(f"m{i}", i / 10) for i in range(4)}
    monkeypatch.setattr(adaptive, "METHODS", fake)
    res = adaptive.successive_halving("Empty-6x6", list(fake), 4000)
    # 2 rounds; round 1 spent 3 x 2000, more than the budget: round 2 still gets 4000 / 4
    assert [r.steps for r in res.rounds] == [500, 1000] and res.chosen == "m3"
    assert res.result.steps == 1000  # it used to be 1 step


def test_pbt_refuses_a_budget_under_one_step_per_member():
    with pytest.raises(ValueError, match="at least 4 env-steps"):
        METHODS["ppo-pbt"].run("Empty-6x6", steps=3, num_envs=1, seed=0,
                               options=MethodOptions(policy=TINY, population=4))
