"""The exact oracle of a grid level: optimal return by value iteration over the true state space.

``solve`` enumerates every state reachable from the level's start state with the batched engine
itself (``GridEngine.transition``), so the oracle can never disagree with the dynamics it scores:
the frontier is expanded in chunks of ``CHUNK_ROWS`` rows, one row per state and distinct
transition (an action and a joint outcome of the stochastic components; pairs that the action
stage maps to the same effective action with the same other outcomes are one transition, see
``_distinct_columns``), and the next states are deduplicated by a byte key of
(grid, position, direction, carrying, component extras); the time step, random counters and
level index are not part of a state. Finite-horizon value iteration then runs backwards over
t = max_steps .. 1, vectorized over (states, actions, outcomes), with the reward of step t equal
to ``fixed + timed * (1 - time_decay * t / max_steps)`` computed in float32 exactly as the engine
does, no continuation after a terminating transition and truncation after ``max_steps``.

State cap: when more than ``state_cap`` states (default ``STATE_CAP`` = 200,000) are reachable,
``solve`` stops and returns a certified upper bound with ``exact=False`` instead
(``oracle_bounds.return_upper_bound``).

Assumptions (true of every registered component): transitions and rewards depend on the state
and the action only, not on the time step; stochastic components expose their discrete outcomes
through ``num_outcomes`` / ``outcome_probs`` and outcomes of different components are independent;
the action stage maps (action, its components' outcomes) to the effective action independently
of the state, and later stages read only the effective action.

The state enumeration lives in ``oracle_states``, the upper bounds (``return_upper_bound``,
``state_count_bound``) in ``oracle_bounds`` and the random-policy returns and
``normalized_scores`` in ``scores``; they are imported here too.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from autoworld.envs.grid.components.registry import REGISTRY
from autoworld.envs.grid.engine import NUM_ACTIONS, GridEngine
from autoworld.envs.grid.level import Level, LevelBank
from autoworld.envs.grid.oracle_bounds import return_upper_bound, state_count_bound
from autoworld.envs.grid.oracle_states import (
    CHUNK_ROWS,
    SMALL_ROWS,
    StateBudgetExceeded,
    _enumerate,
    _HashCollision,
)
from autoworld.envs.grid.scores import EPS, normalized_scores, random_return, random_returns
from autoworld.errors import LevelError

# The oracle's public names, with those defined in oracle_bounds, oracle_states and scores:
# callers imported them from here before those modules existed.
__all__ = [
    "CHUNK_ROWS", "EPS", "PLAN_BUDGET", "SMALL_ROWS", "STATE_CAP", "OptimalPolicy",
    "OracleResult",
    "StateBudgetExceeded", "normalized_scores", "random_return", "random_returns",
    "return_upper_bound", "solve", "solve_many", "state_count_bound",
]

log = logging.getLogger(__name__)

STATE_CAP = 200_000
PLAN_BUDGET = 64_000_000  # max bytes of the per-step policy table kept to read a plan back


class OracleResult(BaseModel):
    """What the oracle knows about one level."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    optimal_return: float = Field(..., description="Optimal expected return (an upper bound "
                                  "when exact is false).")
    exact: bool = Field(..., description="True: exact value iteration; false: certified upper "
                        "bound because the state space exceeded the cap.")
    num_states: int = Field(..., ge=0, description="Reachable states enumerated (at the cap "
                            "when exact is false).")
    plan: list[int] | None = Field(None, description="An optimal action sequence from the start "
                                   "state (deterministic worlds only).")
    positive_reachable: bool = Field(False, description="Some reachable transition pays a "
                                     "positive reward (exact results only).")
    stochastic: bool = Field(False, description="The world has random transition outcomes.")
    horizon: int = Field(..., ge=1, description="max_steps of the world.")
    seconds: float = Field(0.0, ge=0.0, description="Wall time of the solve.")


# ====================================================================== exact solve
def solve(spec, level: Level, *, state_cap: int = STATE_CAP, device: str | torch.device = "cpu",
          plan: bool = True) -> OracleResult:
    """Optimal return of ``level`` in world ``spec`` (see the module docstring).

    Args:
        spec: the world (a ``GridWorldSpec``).
        level: the start state.
        state_cap: most states enumerated before falling back to a certified upper bound.
        device: torch device of the enumeration engine.
        plan: read an optimal action sequence back (deterministic worlds, if the policy table
            fits ``PLAN_BUDGET`` bytes).

    Example:
        >>> from autoworld.envs.catalogue import load_world
        >>> from autoworld.envs.grid.levels import bank
        >>> spec = load_world("DoorKey-8x8")
        >>> res = solve(spec, bank(spec, "test").level(0))
        >>> res.exact, 0.0 < res.optimal_return <= 1.0
        (True, True)
    """
    return solve_many(spec, [level], state_cap=state_cap, device=device, plan=plan)[0]


class OptimalPolicy:
    """The oracle's optimal closed-loop policy over the reachable states of a batch of levels
    (stochastic worlds too): the action value iteration picked for every (time step, state).

    ``actions(state)`` reads it for a batch of engine states of those levels (an engine whose
    bank is the same levels, in the same order, so that level ids agree).
    """

    def __init__(self, table: np.ndarray, index, remap: np.ndarray | None,
                 solved: np.ndarray) -> None:
        self.table = table  # (T, N) uint8
        self.index = index  # state key -> enumeration id
        self.remap = remap  # enumeration id -> table column (-1: level over the cap)
        self.solved = solved  # (L,) bool: levels whose states are all in the table

    def actions(self, state, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(n,) int64 optimal actions of the states (only ``rows``, a bool mask, are looked
        up; the others get action 0) at their own time step ``state.t``."""
        from autoworld.envs.grid.oracle_states import state_keys

        n = state.pos.shape[0]
        out = np.zeros(n, dtype=np.int64)
        sel = (np.arange(n) if rows is None
               else np.flatnonzero(rows.detach().cpu().numpy()))
        if len(sel):
            ids = self.index.find(state_keys(state)[sel])
            if self.remap is not None:
                ids = np.where(ids >= 0, self.remap[np.maximum(ids, 0)], -1)
            if (ids < 0).any():
                raise LevelError("a state outside the oracle's enumeration (a level over the "
                                 "state cap, or an engine out of step with the oracle)")
            t = np.minimum(state.t.detach().cpu().numpy()[sel], self.table.shape[0] - 1)
            out[sel] = self.table[t, ids]
        return torch.from_numpy(out)


def solve_many(spec, levels: Sequence[Level], *, state_cap: int = STATE_CAP,
               device: str | torch.device = "cpu", plan: bool = False,
               state_budget: int | None = None,
               policy_out: list | None = None) -> list[OracleResult]:
    """``solve`` for several levels of one world in one batched pass (identical results).

    The levels are the batch dimension: one engine holds all of them as its level bank, the
    reachable states of every level are enumerated together (a state's key starts with its
    level, so the levels' state spaces stay disjoint) and value iteration runs once over their
    union. Each state's value is computed by exactly the same arithmetic as in a one-level
    solve, so every result equals ``solve(spec, level)`` bit for bit; the state cap applies per
    level. ``seconds`` of each result is the batch's wall time shared evenly.

    ``state_budget``: the most states enumerated over all the levels together; above it the
    pass stops at once with :class:`StateBudgetExceeded` (generation uses it, so that one
    world with a huge state space cannot stall a run). None: no budget.

    ``policy_out``: a list that gets the levels' :class:`OptimalPolicy` appended when its
    table fits ``PLAN_BUDGET`` bytes (what demonstrations of a stochastic world follow); the
    results are the same with or without it.
    """
    start = time.perf_counter()
    levels = list(levels)
    if not levels:
        return []
    L = len(levels)
    T = spec.max_steps
    kinds = {c.kind for factor in (spec.transition, spec.observation, spec.reward)
             for c in factor}
    comps = [cls for name, cls in REGISTRY.items() if name in kinds and cls.num_outcomes > 0]
    # joint outcome j -> per-component outcome digits (the last component varies fastest)
    sizes = [c.num_outcomes for c in comps]
    joint = np.arange(math.prod(sizes))
    digits, div = {}, 1
    for comp, n in zip(reversed(comps), reversed(sizes), strict=True):
        digits[comp.name] = (joint // div) % n
        div *= n
    bank = LevelBank.from_levels(levels)
    probe = GridEngine(spec, num_envs=1, device=device, banks=[bank], final_obs=False)
    probs = np.ones(len(joint), dtype=np.float64)
    for comp in comps:
        p = probe.components[comp.name].outcome_probs()[0].double().cpu().numpy()
        p = p / p.sum()  # float32 probabilities may sum to 1 +- 1e-8; keep expectations exact
        probs = probs * p[digits[comp.name]]
    keep = probs > 0  # outcomes that cannot happen are not enumerated
    probs = probs[keep]
    digits = {name: d[keep] for name, d in digits.items()}
    K = len(probs)
    # the distinct transitions of a state: (action, outcome) pairs that the action stage maps
    # to the same effective action (with the same other outcomes) are stepped once
    rep_action, rep_digits, columns = _distinct_columns(spec, bank, device, digits, K)
    U = len(rep_action)
    engines: dict[int, tuple[GridEngine, torch.Tensor, dict[str, torch.Tensor]]] = {}

    def batch_engine(states: int):
        """An engine that steps the ``U`` distinct rows of ``states`` states at once
        (cached)."""
        if states not in engines:
            R = states * U
            eng = GridEngine(spec, num_envs=R, device=device, banks=[bank], final_obs=False)
            col = torch.arange(R, device=eng.device) % U
            actions = torch.from_numpy(rep_action).to(eng.device)[col]  # (R,)
            outcomes = {name: torch.from_numpy(d).to(eng.device)[col]
                        for name, d in rep_digits.items()}
            engines[states] = (eng, actions, outcomes)
        return engines[states]

    indexes: list = []
    try:
        graph = _enumerate(batch_engine, U, L, state_cap, T, budget=state_budget,
                           index_out=indexes)
    except _HashCollision:  # astronomically rare: the exact byte-keyed index, same ids
        graph = _enumerate(batch_engine, U, L, state_cap, T, hashed=False, budget=state_budget,
                           index_out=indexes)
    except StateBudgetExceeded as exc:
        raise StateBudgetExceeded(
            f"{spec.name}: its {L} levels have more than {state_budget:,} reachable states in "
            f"all ({exc}); an exact oracle would take minutes: make the world smaller or "
            "simpler (fewer keys, doors, coins, cracked or slippery cells, a shorter "
            "max_steps)") from None
    nxt, fixed, timed, owner, counts, over, depth = graph
    stochastic = K > 1
    starts = np.arange(L)
    remap = None
    if over.any():  # only the levels below the cap are solved: drop the others' states
        sel = np.flatnonzero(~over[owner])
        remap = np.full(len(owner), -1, dtype=np.int64)
        remap[sel] = np.arange(len(sel))
        nxt = np.where(nxt[sel] >= 0, remap[nxt[sel]], -1)
        fixed, timed, owner, starts = fixed[sel], timed[sel], owner[sel], remap[starts]
        depth = depth[sel]
    N = nxt.shape[0]
    reads_plan = plan and not stochastic
    keep_plan = (reads_plan or policy_out is not None) and T * N <= PLAN_BUDGET
    decay = np.float32(probe.time_decay[0].item())
    values, policy = _value_iteration(nxt, fixed, timed, columns, probs, decay, T, keep_plan,
                                      np.maximum(starts, 0), depth)
    if policy_out is not None and policy is not None:
        policy_out.append(OptimalPolicy(policy, indexes[-1], remap, ~over))
    if not reads_plan:
        policy = None  # plans only for deterministic worlds, and when asked
    top = np.float32(1.0) - decay / np.float32(T)  # the largest timed factor (step 1)
    pays = ((fixed + np.maximum(timed, 0) * top) > 0).any(1)  # (N,): some transition pays
    positive = np.zeros(L, dtype=bool)
    positive[np.unique(owner[pays])] = True
    share = (time.perf_counter() - start) / L
    out = []
    for i, level in enumerate(levels):
        if over[i]:
            out.append(_bound_result(spec, level, state_cap, stochastic, T, share))
            continue
        out.append(OracleResult(
            optimal_return=float(values[i]), exact=True, num_states=int(counts[i]),
            plan=(_read_plan(policy, nxt, int(starts[i]), columns) if policy is not None
                  else None),
            positive_reachable=bool(positive[i]), stochastic=stochastic, horizon=T,
            seconds=share,
        ))
    return out


def _distinct_columns(spec, bank: LevelBank, device, digits: dict[str, np.ndarray], K: int
                      ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """The distinct transitions among a state's ``NUM_ACTIONS * K`` (action, joint outcome)
    rows.

    The action stage (``slippery``, ``permuted_controls``) turns the chosen action and its own
    components' outcomes into the effective action, and the later stages read only that action
    and their own outcomes; so rows with the same effective action and the same outcomes of the
    other components step to the same state with the same reward (a slip replaces every action
    by the same one: 56 rows of a slippery world are 7 distinct transitions). The effective
    action does not depend on the state, so one engine step of the A * K rows from a level's
    start finds it.

    Returns ``(action, digits, columns)``: the representative row of each distinct transition,
    its action (U,) int64 and outcome digits per component (U,), in order of first row, and
    ``columns`` (A, K) int64, the distinct transition of (action a, joint outcome k).
    """
    A = NUM_ACTIONS
    rows = np.arange(A * K)
    actions, outcome = rows // K, rows % K
    acting = [name for name in digits if REGISTRY[name].stage == "action"]
    if not acting:  # every row is its own transition
        return actions, {n: d[outcome] for n, d in digits.items()}, rows.reshape(A, K)
    eng = GridEngine(spec, num_envs=A * K, device=device, banks=[bank], final_obs=False)
    forced = {n: torch.from_numpy(d[outcome]).to(eng.device) for n, d in digits.items()}
    ctx = eng.transition(eng.state, torch.from_numpy(actions).to(eng.device), forced)
    effective = ctx.action.cpu().numpy().astype(np.int64)
    key = np.stack([effective, *(d[outcome] for n, d in digits.items() if n not in acting)], 1)
    _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    rep = first[order]
    return (actions[rep], {n: d[outcome[rep]] for n, d in digits.items()},
            rank[inv.reshape(-1)].astype(np.int64).reshape(A, K))


def _value_iteration(nxt: np.ndarray, fixed: np.ndarray, timed: np.ndarray,
                     columns: np.ndarray, probs: np.ndarray, decay: np.float32, T: int,
                     keep_plan: bool, starts: np.ndarray, depth: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """Backward induction over t = T..1; returns V_0 of the ``starts`` state ids and,
    if asked, the (T, N) uint8 greedy policy. Runs in numpy: at these sizes it beats torch's CPU
    kernels, and the result does not depend on the device the states were enumerated on.

    ``nxt``, ``fixed``, ``timed`` (N, U) hold each state's distinct transitions and ``columns``
    (A, K) the transition of each (action, outcome) pair: the continuation value of a distinct
    transition is looked up once, then read by every pair it serves (the same elementwise
    arithmetic as over all (action, outcome) rows, so identical values).

    ``depth`` (N,), the BFS depth of each state, nondecreasing with the id: a state first reached
    at depth d is never acted from before time d, so step t only updates the states of depth
    < t, a prefix of the ids (the same arithmetic on every state it updates, so the same values
    and plans as updating all of them)."""
    N, U = nxt.shape
    A, K = columns.shape
    identity = K == 1 and U == A and np.array_equal(columns[:, 0], np.arange(A))
    # (U, N) layout: the max over actions and the sum over outcomes run over long contiguous
    # rows
    idx = np.ascontiguousarray(np.where(nxt < 0, N, nxt).T)
    fixed_t = np.ascontiguousarray(fixed.T)
    timed_t = np.ascontiguousarray(timed.T)
    base = fixed_t.astype(np.float64)
    # timed rewards are sparse (goal-like events): only those entries change with t
    spots = np.flatnonzero(timed_t.reshape(-1) != 0)
    spot_fixed, spot_timed = fixed_t.reshape(-1)[spots], timed_t.reshape(-1)[spots]
    spot_state, spot_row = spots % N, spots // N  # state id and transition row
    # states updated at step t: ids below limits[t - 1] (depth <= t - 1)
    limits = (np.full(T, N, dtype=np.int64) if depth is None
              else np.searchsorted(depth, np.arange(T), side="right"))
    value = np.zeros(N + 1, dtype=np.float64)
    policy = np.zeros((T, N), dtype=np.uint8) if keep_plan else None
    horizon = np.float32(T)
    for t in range(T, 0, -1):
        n = int(limits[t - 1])
        cont = value[idx[:, :n]]  # (U, n) continuation values
        q = cont + base[:, :n]
        if len(spots):  # the engine's float32 arithmetic, term by term
            inside = spot_state < n
            flat = spot_row[inside] * n + spot_state[inside]  # spots in the (U, n) prefix
            factor = np.float32(1.0) - decay * np.float32(t) / horizon
            reward = (spot_fixed[inside] + spot_timed[inside] * factor).astype(np.float64)
            q.reshape(-1)[flat] = cont.reshape(-1)[flat] + reward
        if K > 1:  # expectation summed in a fixed order: bitwise reproducible on any machine
            mean = q[columns[:, 0]] * probs[0]  # (A, n)
            for k in range(1, K):
                mean += q[columns[:, k]] * probs[k]
            q = mean
        elif not identity:
            q = q[columns[:, 0]]
        value[:n] = q.max(0)
        if policy is not None:
            policy[t - 1, :n] = q.argmax(0)
    return value[starts], policy


def _read_plan(policy: np.ndarray, nxt: np.ndarray, start: int = 0,
               columns: np.ndarray | None = None) -> list[int]:
    """Follow the greedy policy from state ``start`` until termination or truncation (``nxt``
    (N, U) and ``columns`` (A, 1) as in ``_value_iteration``; no columns: U = A)."""
    s, out = start, []
    for t in range(policy.shape[0]):
        a = int(policy[t, s])
        out.append(a)
        s = int(nxt[s, a if columns is None else int(columns[a, 0])])
        if s < 0:
            break
    return out


# ====================================================================== upper bound
def _bound_result(spec, level: Level, cap: int, stochastic: bool, T: int,
                  seconds: float) -> OracleResult:
    bound = return_upper_bound(spec, level)
    log.info("%s: more than %d reachable states; using the upper bound %.4f", spec.name, cap,
             bound)
    return OracleResult(optimal_return=bound, exact=False, num_states=cap, plan=None,
                        stochastic=stochastic, horizon=T, seconds=seconds)
