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
``solve`` stops and returns a certified upper bound with ``exact=False`` instead: the sum over the
world's reward components of the most each can pay on this level. reach_goal: its reward,
decayed for the fewest steps that can reach a goal (Manhattan distance, halved with wind, 1 with
ice or teleporters); inverted_goal: likewise for lava; collect_items: coins x reward;
ordered_subgoals: checkpoints x reward; box_on_target: boxes that can still land on a target x
reward; coverage: min(max_steps, open cells - 1) x reward; distance_shaping: scale x the start's
potential gap (the shaping telescopes); hazard and step_penalty: 0. A reward kind without a
known bound falls back to max_steps x the sum of its positive numeric parameters, with a logged
warning.

Assumptions (true of every registered component): transitions and rewards depend on the state
and the action only, not on the time step; stochastic components expose their discrete outcomes
through ``num_outcomes`` / ``outcome_probs`` and outcomes of different components are independent;
the action stage maps (action, its components' outcomes) to the effective action independently
of the state, and later stages read only the effective action.

``state_count_bound`` bounds the reachable states of any level of a spec from the spec alone (the
procedural generator sizes its proposals with it).

``random_return`` measures the uniform-random policy by batched rollouts and
``normalized_scores`` turns a return into the two leaderboard scores.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from autoworld.envs.grid.components.registry import REGISTRY
from autoworld.envs.grid.engine import NUM_ACTIONS, GridEngine, GridState
from autoworld.envs.grid.level import Level, LevelBank
from autoworld.envs.grid.symbols import Cell
from autoworld.errors import LevelError

log = logging.getLogger(__name__)

STATE_CAP = 200_000
CHUNK_ROWS = 8192  # (state, action, outcome) rows per engine call
SMALL_ROWS = 512  # rows of the engine used while the frontier is small
PLAN_BUDGET = 64_000_000  # max bytes of the per-step policy table kept to read a plan back
EPS = 1e-9


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


def solve_many(spec, levels: Sequence[Level], *, state_cap: int = STATE_CAP,
               device: str | torch.device = "cpu", plan: bool = False,
               state_budget: int | None = None) -> list[OracleResult]:
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

    try:
        graph = _enumerate(batch_engine, U, L, state_cap, T, budget=state_budget)
    except _HashCollision:  # astronomically rare: the exact byte-keyed index, same ids
        graph = _enumerate(batch_engine, U, L, state_cap, T, hashed=False, budget=state_budget)
    except StateBudgetExceeded as exc:
        raise StateBudgetExceeded(
            f"{spec.name}: its {L} levels have more than {state_budget:,} reachable states in "
            f"all ({exc}); an exact oracle would take minutes: make the world smaller or "
            "simpler (fewer keys, doors, coins, cracked or slippery cells, a shorter "
            "max_steps)") from None
    nxt, fixed, timed, owner, counts, over, depth = graph
    stochastic = K > 1
    starts = np.arange(L)
    if over.any():  # only the levels below the cap are solved: drop the others' states
        sel = np.flatnonzero(~over[owner])
        remap = np.full(len(owner), -1, dtype=np.int64)
        remap[sel] = np.arange(len(sel))
        nxt = np.where(nxt[sel] >= 0, remap[nxt[sel]], -1)
        fixed, timed, owner, starts = fixed[sel], timed[sel], owner[sel], remap[starts]
        depth = depth[sel]
    N = nxt.shape[0]
    keep_plan = plan and not stochastic and T * N <= PLAN_BUDGET
    decay = np.float32(probe.time_decay[0].item())
    values, policy = _value_iteration(nxt, fixed, timed, columns, probs, decay, T, keep_plan,
                                      np.maximum(starts, 0), depth)
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


def _enumerate(batch_engine: Callable[[int], tuple], rows_per_state: int, num_levels: int,
               state_cap: int, T: int, hashed: bool = True, budget: int | None = None):
    """Breadth-first enumeration of the reachable states of every level with the engine.

    ``batch_engine(n)`` gives an engine that steps n states at once, ``rows_per_state`` rows
    (U, one per distinct transition, see ``_distinct_columns``) per state; small frontiers use
    a small engine (cheap to build), large ones a ``CHUNK_ROWS`` one.
    State i < ``num_levels`` is the start of level i (bank level i); ids are handed out in BFS
    order, so depths never decrease with the id. Returns ``(next, fixed, timed, owner, counts,
    over, depth)``: next (N, U) int64 state ids (-1: the transition terminates), the fixed
    and timed rewards (N, U) float32 of every transition, the level of each state (N,), the
    states per level (L,), whether a level has more than ``state_cap`` states (L,) bool (it is
    not expanded further) and each state's BFS depth (N,). States first reached at step ``T``
    are never acted from (their rows are
    -1/0). ``hashed`` picks the state index (``_StateIndex``; both give the same ids).
    """
    U = rows_per_state
    small = max(1, SMALL_ROWS // rows_per_state)
    big = max(small, CHUNK_ROWS // rows_per_state)
    eng = batch_engine(small)[0]
    L = num_levels
    lv = torch.arange(L, dtype=torch.long, device=eng.device)
    fresh = eng.initial_state(eng.bank_offset[:1].expand(L) + lv)
    start = {k: v.clone() for k, v in _state_fields(fresh).items()}
    start["level"] = fresh.level.clone()
    index = _StateIndex(hashed)
    start_keys = _key_matrix(start)  # the starts are distinct: their level differs
    start_hash = _row_hash(start_keys)
    index.ids(start_keys, start_hash if len(np.unique(start_hash)) == L else None)
    depth = np.zeros(max(1024, 2 * L), dtype=np.int64)  # BFS depth per state id
    owner_buf = np.zeros(len(depth), dtype=np.int64)
    owner_buf[:L] = np.arange(L)
    counts = np.ones(L, dtype=np.int64)
    over = np.zeros(L, dtype=bool)
    pending: deque[dict[str, torch.Tensor]] = deque([start])  # unexpanded states, in id order
    nxt_parts, fixed_parts, timed_parts = [], [], []
    expanded = 0
    while pending:
        total = len(index)
        limit = int(np.searchsorted(depth[:total], T))  # ids < limit are reached before T
        if expanded >= limit:
            break
        per_batch = big if limit - expanded > small else small
        part = _take(pending, min(per_batch, limit - expanded))
        n = _rows(part)
        nxt = np.full((n, U), -1, dtype=np.int64)
        fixed = np.zeros((n, U), dtype=np.float32)
        timed = np.zeros((n, U), dtype=np.float32)
        lvl = part["level"].cpu().numpy()
        active = ~over[lvl]
        if not active.all():  # drop the states of levels above the cap
            sel = np.flatnonzero(active)
            part = {k: v.index_select(0, torch.from_numpy(sel).to(v.device))
                    for k, v in part.items()}
        else:
            sel = None
        m_states = _rows(part)
        if m_states:
            eng, actions, outcomes = batch_engine(big if m_states > small else small)
            R = eng.num_envs
            s = _expand(eng.state, part, rows_per_state, R)
            ctx = eng.transition(s, actions, outcomes or None)
            m = m_states * rows_per_state
            live = np.flatnonzero(~ctx.terminated[:m].cpu().numpy())  # rows that continue
            after = {k: v[:m] for k, v in _state_fields(s).items()}
            after["level"] = s.level[:m]
            mat = _key_matrix(after)[live]
            first, group, hashes = _group_rows(mat)  # distinct next states, first-seen order
            before = len(index)
            ids = index.ids(mat[first], hashes)
            rows_nxt = np.full(m, -1, dtype=np.int64)
            rows_nxt[live] = ids[group]
            new = ids >= before  # new ids come in increasing order of their first row
            if new.any():
                rows = live[first[new]]
                pending.append({k: v.index_select(0, torch.from_numpy(rows).to(v.device))
                                for k, v in after.items()})
                parents = rows // rows_per_state
                states_done = expanded + (parents if sel is None else sel[parents])
                total = len(index)
                if total > len(depth):
                    grow = max(total, 2 * len(depth))
                    depth = np.concatenate([depth, np.zeros(grow - len(depth), np.int64)])
                    owner_buf = np.concatenate([owner_buf,
                                                np.zeros(grow - len(owner_buf), np.int64)])
                depth[before:total] = depth[states_done] + 1
                new_owner = owner_buf[states_done]
                owner_buf[before:total] = new_owner
                counts += np.bincount(new_owner, minlength=L)
                over |= counts > state_cap
                if budget is not None and total > budget:
                    raise StateBudgetExceeded(f"{total:,} found after {expanded + n:,} "
                                              "expanded")
            where = slice(None) if sel is None else sel
            nxt[where] = rows_nxt.reshape(m_states, U)
            fixed[where] = ctx.reward_fixed[:m].view(m_states, U).cpu().numpy()
            timed[where] = ctx.reward_timed[:m].view(m_states, U).cpu().numpy()
        nxt_parts.append(nxt)
        fixed_parts.append(fixed)
        timed_parts.append(timed)
        expanded += n
    total = len(index)
    pad = total - expanded
    if pad:
        nxt_parts.append(np.full((pad, U), -1, dtype=np.int64))
        fixed_parts.append(np.zeros((pad, U), dtype=np.float32))
        timed_parts.append(np.zeros((pad, U), dtype=np.float32))
    return (np.concatenate(nxt_parts), np.concatenate(fixed_parts),
            np.concatenate(timed_parts), owner_buf[:total].copy(), counts, over,
            depth[:total].copy())


def _take(pending: deque, n: int) -> dict[str, torch.Tensor]:
    """Pop the first ``n`` rows off a deque of state blocks."""
    taken = []
    while n > 0:
        block = pending[0]
        k = _rows(block)
        if k <= n:
            taken.append(pending.popleft())
            n -= k
        else:
            taken.append({f: v[:n] for f, v in block.items()})
            pending[0] = {f: v[n:] for f, v in block.items()}
            n = 0
    if len(taken) == 1:
        return taken[0]
    return {f: torch.cat([b[f] for b in taken]) for f in taken[0]}


def _state_fields(s: GridState) -> dict[str, torch.Tensor]:
    """The tensors that make up a state's identity (t, tick, key and level excluded)."""
    out = {"grid": s.grid, "pos": s.pos, "dir": s.dir, "carrying": s.carrying}
    out.update({f"x.{k}": s.extras[k] for k in sorted(s.extras)})
    return out


def _rows(fields: dict[str, torch.Tensor]) -> int:
    return int(fields["pos"].shape[0])


def _key_matrix(fields: dict[str, torch.Tensor]) -> np.ndarray:
    """(n, bytes) uint8: per row, the concatenated bytes of every state tensor."""
    n = _rows(fields)
    parts = []
    for v in fields.values():
        a = v.reshape(n, -1).cpu().numpy()
        if a.dtype == np.bool_:
            a = a.astype(np.uint8)
        parts.append(np.ascontiguousarray(a).view(np.uint8).reshape(n, -1))
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def _as_bytes(mat: np.ndarray) -> list[bytes]:
    mat = np.ascontiguousarray(mat)
    return mat.view(np.dtype((np.void, mat.shape[1]))).ravel().tolist()


def _group_rows(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Group identical rows of ``mat`` (n, b) uint8.

    Returns ``(first, group, hashes)``: the row of each distinct value in order of first
    occurrence (U,), each row's group (n,) and the 64-bit hash of each distinct row (None when
    two different rows collided). Rows are grouped by a vectorized 64-bit hash, verified byte
    for byte (a collision falls back to grouping by the bytes themselves).
    """
    n, width = mat.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), None
    h = _row_hash(mat)
    _, first, inv = np.unique(h, return_index=True, return_inverse=True)
    hashed = True
    if not np.array_equal(mat, mat[first[inv]]):
        void = mat.view(np.dtype((np.void, width))).ravel()
        _, first, inv = np.unique(void, return_index=True, return_inverse=True)
        hashed = False
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    first = first[order]
    return first, rank[inv.reshape(-1)], h[first] if hashed else None


def _row_hash(mat: np.ndarray) -> np.ndarray:
    """(n,) uint64 splitmix-style hash of each row of ``mat`` (n, b) uint8."""
    n, width = mat.shape
    padded = np.zeros((n, -(-width // 8) * 8), dtype=np.uint8)
    padded[:, :width] = mat
    words = padded.view(np.uint64)  # (n, W)
    h = np.full(n, 0x9E3779B97F4A7C15, dtype=np.uint64)
    for j in range(words.shape[1]):  # wrapping uint64 arithmetic
        h ^= words[:, j]
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
    return h


class StateBudgetExceeded(LevelError):
    """The levels of one oracle pass have more reachable states than its ``state_budget``."""


class _HashCollision(Exception):
    """Two different states share a 64-bit key hash: redo the enumeration with exact keys."""


class _StateIndex:
    """State key -> id, ids handed out in order of first sight.

    ``hashed``: the keys' 64-bit hashes in a few sorted runs (a log-structured merge: a new
    block of hashes is one run, and runs of similar size are merged, so n insertions cost
    O(n log^2 n) instead of the O(n^2) of inserting into one sorted array), looked up with
    ``searchsorted`` and verified byte for byte against the stored keys (a collision raises
    ``_HashCollision``); otherwise a dict of the keys' bytes. Both give the same ids.
    """

    def __init__(self, hashed: bool = True) -> None:
        self.hashed = hashed
        self.n = 0
        self._dict: dict[bytes, int] = {}
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted hashes, their ids)
        self._keys: np.ndarray | None = None

    def __len__(self) -> int:
        return self.n

    def _lookup(self, h: np.ndarray) -> np.ndarray:
        """The id of each hash, -1 where unknown."""
        out = np.full(len(h), -1, dtype=np.int64)
        for run_h, run_ids in self._runs:
            pos = np.minimum(np.searchsorted(run_h, h), len(run_h) - 1)
            hit = run_h[pos] == h
            out[hit] = run_ids[pos[hit]]
        return out

    def _insert(self, hs: np.ndarray, ids: np.ndarray) -> None:
        """Add a block of new (hash, id) pairs as a run; merge runs of similar size."""
        order = np.argsort(hs, kind="stable")
        self._runs.append((hs[order], ids[order]))
        while len(self._runs) > 1 and 2 * len(self._runs[-1][0]) >= len(self._runs[-2][0]):
            (h2, i2), (h1, i1) = self._runs.pop(), self._runs.pop()
            merged_h = np.concatenate([h1, h2])
            order = np.argsort(merged_h, kind="stable")
            self._runs.append((merged_h[order], np.concatenate([i1, i2])[order]))

    def ids(self, mat: np.ndarray, h: np.ndarray | None) -> np.ndarray:
        """Ids of the distinct key rows ``mat`` (new rows get the next ids, in row order)."""
        if not self.hashed:
            get = self._dict.setdefault
            out = np.fromiter((get(key, len(self._dict)) for key in _as_bytes(mat)),
                              dtype=np.int64, count=len(mat))
            self.n = len(self._dict)
            return out
        if h is None:  # _group_rows saw two different rows with one hash
            raise _HashCollision
        out = self._lookup(h) if self.n else np.full(len(h), -1, dtype=np.int64)
        found = out >= 0
        if found.any() and not np.array_equal(self._keys[out[found]], mat[found]):
            raise _HashCollision
        new = np.flatnonzero(~found)
        k = len(new)
        out[new] = self.n + np.arange(k)
        if k:
            if self._keys is None:
                self._keys = np.empty((max(1024, 2 * k), mat.shape[1]), dtype=np.uint8)
            if self.n + k > len(self._keys):
                grown = np.empty((max(self.n + k, 2 * len(self._keys)), mat.shape[1]),
                                 dtype=np.uint8)
                grown[:self.n] = self._keys[:self.n]
                self._keys = grown
            self._keys[self.n:self.n + k] = mat[new]
            self._insert(h[new], out[new])
            self.n += k
        return out


def _expand(base: GridState, part: dict[str, torch.Tensor], repeat: int, R: int) -> GridState:
    """A batch of R rows: each state of ``part`` repeated ``repeat`` times, padded with the
    last one."""
    n = _rows(part)
    dev = part["pos"].device
    rows = (torch.arange(R, device=dev) // repeat).clamp(max=n - 1)

    def tile(v: torch.Tensor) -> torch.Tensor:
        return v.index_select(0, rows)  # a fresh tensor: the engine writes into it

    extras = {k[2:]: tile(v) for k, v in part.items() if k.startswith("x.")}
    return GridState(
        grid=tile(part["grid"]), pos=tile(part["pos"]), dir=tile(part["dir"]),
        carrying=tile(part["carrying"]), t=torch.zeros_like(base.t),
        tick=torch.zeros_like(base.tick), key=base.key.clone(), level=tile(part["level"]),
        extras=extras,
    )


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


def _count(grid: np.ndarray, *codes: Cell) -> int:
    return int(np.isin(grid, [int(c) for c in codes]).sum())


def _open_cells(spec, level: Level) -> int:
    from autoworld.envs.grid.layouts import reachable

    open_ = level.grid != Cell.WALL
    wrap = spec.component("wrap_edges") is not None
    return int(reachable(open_, level.agent_pos, wrap).sum())


def _shaping_gap(spec, level: Level, scale: float) -> float:
    goals = np.argwhere(level.grid == Cell.GOAL)
    if len(goals) == 0:
        return 0.0
    r, c = level.agent_pos
    dist = int(np.min(np.abs(goals[:, 0] - r) + np.abs(goals[:, 1] - c)))
    return scale * dist / (spec.height + spec.width)


def _boxes_gain(level: Level) -> int:
    boxes = _count(level.grid, Cell.BOX, Cell.BOX_ON_TARGET)
    targets = _count(level.grid, Cell.TARGET, Cell.BOX_ON_TARGET)
    return max(0, min(boxes, targets) - _count(level.grid, Cell.BOX_ON_TARGET))


def _min_steps(spec, level: Level, code: Cell) -> int | None:
    """A lower bound on the steps from the start to a ``code`` cell (None: there is none)."""
    cells = np.argwhere(level.grid == code)
    if len(cells) == 0:
        return None
    if spec.component("teleporters") is not None or spec.component("ice_sliding") is not None:
        return 1  # one step may cover any distance
    dr = np.abs(cells[:, 0] - level.agent_pos[0])
    dc = np.abs(cells[:, 1] - level.agent_pos[1])
    if spec.component("wrap_edges") is not None:
        dr, dc = np.minimum(dr, spec.height - dr), np.minimum(dc, spec.width - dc)
    d = int((dr + dc).min())
    if spec.component("wind") is not None:
        d = (d + 1) // 2  # the wind may add one cell per step
    return max(1, d)


def _timed_bound(spec, level: Level, code: Cell, reward: float, decay: float) -> float:
    """Most a terminal ``reward * (1 - decay * t / max_steps)`` on a ``code`` cell can pay: at
    the earliest step, in the engine's float32 arithmetic."""
    t = _min_steps(spec, level, code)
    if t is None or t > spec.max_steps:
        return 0.0
    f32 = np.float32
    factor = f32(1.0) - f32(decay) * f32(t) / f32(spec.max_steps)
    return float(f32(reward) * factor)


_BOUNDS: dict[str, Callable[[object, Level, object], float]] = {
    "reach_goal": lambda s, lv, p: _timed_bound(s, lv, Cell.GOAL, p.reward, p.time_decay),
    "inverted_goal": lambda s, lv, p: _timed_bound(s, lv, Cell.LAVA, p.reward, p.time_decay),
    "collect_items": lambda s, lv, p: p.reward * _count(lv.grid, Cell.COIN),
    "ordered_subgoals": lambda s, lv, p: p.reward * _count(
        lv.grid, Cell.CHECKPOINT_1, Cell.CHECKPOINT_2, Cell.CHECKPOINT_3),
    "box_on_target": lambda s, lv, p: p.reward * _boxes_gain(lv),
    "coverage": lambda s, lv, p: p.reward * min(s.max_steps, _open_cells(s, lv) - 1),
    "distance_shaping": lambda s, lv, p: _shaping_gap(s, lv, p.scale),
    "hazard": lambda s, lv, p: 0.0,
    "step_penalty": lambda s, lv, p: 0.0,
}


def return_upper_bound(spec, level: Level) -> float:
    """A certified upper bound on the return of any policy on ``level`` (see the module
    docstring): the sum over reward components of the most each can pay."""
    total = 0.0
    for comp in spec.reward:
        fn = _BOUNDS.get(comp.kind)
        if fn is None:
            numeric = [v for k, v in comp.model_dump().items()
                       if isinstance(v, int | float) and not isinstance(v, bool)
                       and "decay" not in k and v > 0]
            log.warning("no return bound known for reward %r; using max_steps x its positive "
                        "parameters", comp.kind)
            total += spec.max_steps * float(sum(numeric))
        else:
            total += float(fn(spec, level, comp))
    return total


def state_count_bound(spec) -> int:
    """An upper bound on the reachable states of any one level of ``spec``, from the spec alone
    (cheap: no level is drawn). A state is (agent cell, facing, the cells that can change, the
    components' extras): the agent stands on one of the C cells inside the border (all H x W
    cells without one) and faces one of 4 ways; one key (``keys_doors`` with a locked door in
    the layout) lies on one of the C cells or is carried, and its door is locked or open; each
    coin is there or collected; the boxes lie on C-choose-boxes cells; each cracked cell is
    whole or collapsed; checkpoints add their progress counter (0..n); coverage adds a visited
    bit per cell. Every other component keeps the grid as it is.

    Example:
        >>> from autoworld.envs.catalogue import load_world
        >>> state_count_bound(load_world("DoorKey-8x8")) >= 4_000
        True
    """
    lay, obj = spec.layout, spec.objects
    border = getattr(lay, "border", True)
    cells = (spec.height - 2) * (spec.width - 2) if border else spec.height * spec.width
    kinds = {c.kind for factor in (spec.transition, spec.reward) for c in factor}
    bound = cells * 4
    locked = lay.kind == "doorkey" or (lay.kind == "rooms" and lay.locked_doors > 0)
    if locked and "keys_doors" in kinds:
        bound *= (cells + 1) * 2
    bound *= 2 ** obj.coins
    if lay.kind == "sokoban":
        bound *= math.comb(cells, lay.boxes)
    if obj.cracked > 0 and "collapsing_floor" in kinds:
        bound *= 2 ** int(round(obj.cracked * cells))
    if obj.checkpoints:
        bound *= obj.checkpoints + 1
    if "coverage" in kinds:
        bound *= 2 ** cells
    return int(bound)


# ====================================================================== random policy
def random_return(spec, level: Level, episodes: int = 256, seed: int = 0,
                  device: str | torch.device = "cpu") -> float:
    """Mean return of the uniform-random policy on ``level`` over ``episodes`` batched episodes
    (each env's rewards are summed until its first episode ends). Deterministic for a seed."""
    return random_returns(spec, [level], episodes=episodes, seed=seed, device=device)[0]


def random_returns(spec, levels: Sequence[Level], episodes: int = 256, seed: int = 0,
                   device: str | torch.device = "cpu") -> list[float]:
    """``random_return`` of several levels of one world in one batched engine (identical
    results): level i's episodes are envs ``i * episodes ..``, each with the random key and the
    action stream that env would have in a one-level run.

    The episodes advance by the engine's transition alone (no observations, no resets: only the
    first episode of an env counts), with the reward, the time step and the random counter of
    ``GridEngine.step``, so the returns are those of stepping the engine."""
    levels = list(levels)
    L = len(levels)
    if L == 0:
        return []
    B = L * episodes
    eng = GridEngine(spec, num_envs=B, device=device, seed=seed,
                     banks=[LevelBank.from_levels(levels)], final_obs=False,
                     env_index=list(range(episodes)) * L)
    eng.reset(level_ids=torch.arange(L).repeat_interleave(episodes))
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(B, dtype=torch.float64, device=eng.device)
    alive = torch.ones(B, dtype=torch.bool, device=eng.device)
    s = eng.state
    horizon = eng.max_steps.to(torch.float32)
    for _ in range(spec.max_steps):
        a = torch.randint(0, NUM_ACTIONS, (episodes,), generator=gen).repeat(L).to(eng.device)
        ctx = eng.transition(s, a)
        s.t = s.t + 1
        # GridEngine.step's reward, term by term
        reward = ctx.reward_fixed + ctx.reward_timed * (
            1.0 - eng.time_decay * s.t.to(torch.float32) / horizon)
        s.tick = s.tick + 1
        total += torch.where(alive, reward.double(), 0.0)
        alive &= ~(ctx.terminated | (s.t >= eng.max_steps))
        if not bool(alive.any()):
            break
    per_level = total.cpu().view(L, episodes).tolist()
    return [math.fsum(row) / episodes for row in per_level]


# ====================================================================== scores
def normalized_scores(R, R_opt, R_random):
    """The two leaderboard scores of a return ``R``: ``(R / R_opt, (R - R_random) / (R_opt -
    R_random))``. Scalars give floats; arrays (numpy or anything array-like) give arrays.

    Zero denominators: where ``R_opt <= 1e-9`` (nothing positive is attainable) the first score
    is 1.0 if ``R >= R_opt`` (the optimum is matched) and 0.0 otherwise; where ``R_opt - R_random
    <= 1e-9`` (the random policy is already optimal) the second score is likewise 1.0 if ``R >=
    R_opt`` and 0.0 otherwise. Both comparisons allow a 1e-9 tolerance.
    """
    r, opt, rnd = (np.asarray(x, dtype=np.float64) for x in (R, R_opt, R_random))
    matched = np.where(r >= opt - EPS, 1.0, 0.0)
    gap = opt - rnd
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(opt > EPS, r / np.where(opt > EPS, opt, 1.0), matched)
        gain = np.where(gap > EPS, (r - rnd) / np.where(gap > EPS, gap, 1.0), matched)
    if ratio.ndim == 0:
        return float(ratio), float(gain)
    return ratio, gain
