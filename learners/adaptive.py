"""Environment-adaptive method selection: pick a learning method per world within a budget.

``successive_halving`` runs every candidate method on a world with a small share of the budget,
keeps the best ``1/eta`` by validation score, and re-runs the survivors with a larger share, until
one is left; the rounds together keep within the world's budget (the same budget a fixed method
gets): no run passes its share, and what a round leaves (a method that could not run, runs that
stop at their last whole rollout or generation) goes to the rounds after it;
``AdaptiveResult.env_steps`` says what was spent. ``compare`` reports the adaptive selector
beside

- the best single fixed method (the one with the highest mean score over all worlds),
- the hindsight upper bound (the best method of each world, chosen after the fact),

and the gain of fixed methods over the untrained policy as the number of worlds grows (AutoEnv's
finding is that the best fixed method's gain shrinks with more worlds while the per-world best
keeps much more). Selection uses validation scores; every reported score is on the test levels,
so choosing on validation cannot inflate the report.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from autoworld.leaderboard.stats import GainByWorlds, gains_by_world_count
from autoworld.learners.methods import METHODS, MethodOptions, MethodResult, grid_methods

log = logging.getLogger(__name__)


class HalvingRound(BaseModel):
    """One round of successive halving on one world."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(..., ge=0, description="Env-step budget of each surviving method.")
    env_steps: int = Field(0, ge=0, description="Env-steps the round's runs spent.")
    scores: dict[str, float] = Field(..., description="Validation score per method (-inf: the "
                                     "method could not run on this world).")
    survivors: list[str] = Field(..., description="Methods kept for the next round.")


class AdaptiveResult(BaseModel):
    """The adaptive selector's outcome on one world."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    world: str = Field(..., description="World name.")
    chosen: str = Field(..., description="The method picked for this world.")
    rounds: list[HalvingRound] = Field(..., description="The halving rounds.")
    env_steps: int = Field(..., ge=0, description="Env-steps spent by all rounds.")
    budget: int = Field(..., ge=0, description="The world's env-step budget.")
    result: MethodResult = Field(..., description="The chosen method's last run.")


def _try_run(name: str, world, steps: int, num_envs: int, seed: int, device: str,
             options: MethodOptions) -> MethodResult | None:
    from autoworld.errors import AutoworldError

    try:
        res = METHODS[name].run(world, steps=steps, num_envs=num_envs, seed=seed,
                                device=device, options=options)
    except AutoworldError as exc:
        log.info("%s cannot run on this world: %s", name, exc)
        return None
    if name == "bc" and "no_demonstrations" in res.extra:
        # BC without oracle plans keeps its initial policy: no candidate for the budget
        log.info("%s cannot run on this world: %s", name, res.extra["no_demonstrations"])
        return None
    return res


def successive_halving(world, methods: Sequence[str], budget: int, *, eta: int = 2,
                       num_envs: int = 64, seed: int = 0, device: str = "cpu",
                       options: MethodOptions | None = None) -> AdaptiveResult:
    """Pick one of ``methods`` for ``world`` within ``budget`` env-steps (see module docstring).

    Round r gives each of its n_r survivors ``left / ((R - r) * n_r)`` steps (R rounds,
    ``left`` the budget not yet spent), and never less than the nominal share
    ``budget / (R * n_r)``: a round that spent less than its part (a method that could not
    run, runs that stop at the last whole rollout or generation within their share) leaves
    more to the later ones. A run never passes its share (a rollout or generation that would
    not fit is cut or dropped), so the selector never passes ``budget`` and the floor does not
    bind. The chosen method's result is its run of the last round (the largest share).
    """
    from autoworld.learners.methods import _world

    spec = _world(world)
    options = (options or MethodOptions()).model_copy(update={"test_eval": True})
    alive = list(methods)
    n_rounds = max(1, math.ceil(math.log(len(alive), eta))) if len(alive) > 1 else 1
    rounds: list[HalvingRound] = []
    spent = 0
    results: dict[str, MethodResult | None] = {}
    for r_index in range(n_rounds):
        steps = max(1, budget // (n_rounds * len(alive)),
                    (budget - spent) // ((n_rounds - r_index) * len(alive)))
        results = {m: _try_run(m, spec, steps, num_envs, seed, device, options) for m in alive}
        round_spent = sum(r.env_steps for r in results.values() if r is not None)
        spent += round_spent
        scores = {m: (r.score if r is not None else float("-inf")) for m, r in results.items()}
        keep = max(1, math.ceil(len(alive) / eta))
        alive = sorted(alive, key=lambda m: -scores[m])[:keep]  # stable: ties keep input order
        rounds.append(HalvingRound(steps=steps, env_steps=round_spent, scores=scores,
                                   survivors=alive))
        if len(alive) == 1:
            break
    chosen = alive[0]
    final = results.get(chosen)  # the winner's run of the last round: its largest share
    if final is None:
        raise ValueError(f"no method of {', '.join(methods)} can run on {spec.name}")
    return AdaptiveResult(world=spec.name, chosen=chosen, rounds=rounds, env_steps=spent,
                          budget=budget, result=final)


# ====================================================================== the comparison
class AdaptiveReport(BaseModel):
    """Adaptive selection beside the best fixed method and the hindsight upper bound."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    worlds: list[str] = Field(..., description="Worlds compared.")
    methods: list[str] = Field(..., description="Methods compared.")
    budget: int = Field(..., ge=0, description="Env-step budget per world (fixed methods and "
                        "the adaptive selector alike).")
    scores: dict[str, dict[str, float]] = Field(..., description="world -> method -> test "
                                                "score of the fixed method (nan: cannot run).")
    initial: dict[str, dict[str, float]] = Field(..., description="world -> method -> test "
                                                 "score of the untrained policy.")
    best_fixed_method: str = Field(..., description="Method with the highest mean score.")
    best_fixed_score: float = Field(..., description="Its mean score over the worlds.")
    upper_bound_score: float = Field(..., description="Mean over worlds of the per-world best.")
    adaptive_score: float | None = Field(None, description="Mean test score of the adaptive "
                                         "selector's picks.")
    adaptive_choices: dict[str, str] = Field(default_factory=dict, description="world -> "
                                             "method the selector picked.")
    fixed_env_steps: float | None = Field(None, description="Env-steps a fixed method's run "
                                          "spent on a world, on average (at most the budget: "
                                          "runs stop at the last whole rollout or generation "
                                          "within it).")
    adaptive_env_steps: float | None = Field(None, description="Env-steps the adaptive "
                                             "selector spent on a world (all its rounds), on "
                                             "average.")
    gains: list[GainByWorlds] = Field(..., description="Gain vs number of worlds.")

    def to_markdown(self) -> str:
        """A short Markdown report."""
        lines = [f"Budget: {self.budget} env-steps per world; {len(self.worlds)} worlds, "
                 f"{len(self.methods)} methods; scores are test R / R_opt.", "",
                 "| selector | mean score |", "|---|---|",
                 f"| best fixed method ({self.best_fixed_method}) | "
                 f"{self.best_fixed_score:.3f} |"]
        if self.adaptive_score is not None:
            lines.append(f"| adaptive (successive halving) | {self.adaptive_score:.3f} |")
        lines += [f"| hindsight upper bound | {self.upper_bound_score:.3f} |"]
        spent = [f"{who} {x:,.0f}" for who, x in (("a fixed method", self.fixed_env_steps),
                                                    ("the adaptive selector",
                                                     self.adaptive_env_steps)) if x is not None]
        if spent:
            lines += ["", f"Env-steps spent per world, on average: {', '.join(spent)}."]
        lines += ["",
                  "| worlds | best fixed gain | upper-bound gain |", "|---|---|---|"]
        lines += [f"| {g.worlds} | {g.best_fixed_gain:+.3f} | {g.upper_bound_gain:+.3f} |"
                  for g in self.gains]
        return "\n".join(lines) + "\n"


def summarize(scores: dict[str, dict[str, float]], initial: dict[str, dict[str, float]],
              budget: int = 0, adaptive: dict[str, AdaptiveResult] | None = None,
              sizes: Sequence[int] = (1, 6), max_subsets: int = 64, seed: int = 0,
              fixed_env_steps: float | None = None) -> AdaptiveReport:
    """Build the report from per-(world, method) scores (nan where a method cannot run; such a
    cell scores its initial score where known, else 0, and gains nothing)."""
    worlds = sorted(scores)
    methods = sorted({m for row in scores.values() for m in row})
    S = np.array([[scores[w].get(m, np.nan) for m in methods] for w in worlds])
    I0 = np.array([[initial[w].get(m, np.nan) for m in methods] for w in worlds])
    S = np.where(np.isnan(S), np.nan_to_num(I0, nan=0.0), S)
    gain = S - np.nan_to_num(I0, nan=0.0)
    best = int(np.argmax(S.mean(0)))
    gains = gains_by_world_count(gain, sizes, max_subsets, seed)
    adaptive_score = None
    choices: dict[str, str] = {}
    if adaptive:
        adaptive_score = float(np.mean([adaptive[w].result.test_score for w in worlds]))
        choices = {w: adaptive[w].chosen for w in worlds}
    return AdaptiveReport(
        worlds=worlds, methods=methods, budget=budget,
        scores={w: dict(zip(methods, map(float, S[i]), strict=True))
                for i, w in enumerate(worlds)},
        initial=initial, best_fixed_method=methods[best],
        best_fixed_score=float(S.mean(0)[best]), upper_bound_score=float(S.max(1).mean()),
        adaptive_score=adaptive_score, adaptive_choices=choices, gains=gains,
        fixed_env_steps=fixed_env_steps,
        adaptive_env_steps=(float(np.mean([adaptive[w].env_steps for w in worlds]))
                            if adaptive else None))


def compare(worlds: Sequence[str], methods: Sequence[str] | None = None, *, budget: int,
            num_envs: int = 64, seed: int = 0, device: str = "cpu",
            options: MethodOptions | None = None, adaptive: bool = True) -> AdaptiveReport:
    """Run every method on every world with ``budget`` env-steps, then the adaptive selector
    with the same per-world budget, and summarize (scores on test levels)."""
    methods = list(methods or grid_methods())
    options = (options or MethodOptions()).model_copy(update={"test_eval": True})
    scores: dict[str, dict[str, float]] = {}
    initial: dict[str, dict[str, float]] = {}
    spent: list[int] = []
    for w in worlds:
        scores[w], initial[w] = {}, {}
        for m in methods:
            r = _try_run(m, w, budget, num_envs, seed, device, options)
            if r is not None:
                spent.append(r.env_steps)
            scores[w][m] = float("nan") if r is None or r.test_score is None else r.test_score
            initial[w][m] = (float("nan") if r is None or r.initial_test_score is None
                             else r.initial_test_score)
    picks = None
    if adaptive:
        picks = {w: successive_halving(w, methods, budget, num_envs=num_envs, seed=seed,
                                       device=device, options=options) for w in worlds}
    return summarize(scores, initial, budget, picks,
                     fixed_env_steps=float(np.mean(spent)) if spent else None)
