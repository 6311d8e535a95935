"""Breadth-first enumeration of the reachable states of grid levels, for the exact oracle.

``_enumerate`` steps the frontier with the batched engine in chunks of ``CHUNK_ROWS`` rows and
hands out state ids in BFS order through ``_StateIndex``, which keys a state by the bytes of its
tensors (grid, position, direction, carrying, component extras) behind a vectorized 64-bit hash.
``oracle.solve_many`` runs value iteration over the graph it returns.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import torch

from autoworld.envs.grid.engine import GridState
from autoworld.errors import LevelError

CHUNK_ROWS = 8192  # (state, action, outcome) rows per engine call
SMALL_ROWS = 512  # rows of the engine used while the frontier is small


def _enumerate(batch_engine: Callable[[int], tuple], rows_per_state: int, num_levels: int,
               state_cap: int, T: int, hashed: bool = True, budget: int | None = None,
               index_out: list | None = None):
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
    ``index_out``: a list the state index is appended to (to look states up afterwards).
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
    if index_out is not None:
        index_out.append(index)
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


def state_keys(s: GridState) -> np.ndarray:
    """(n, b) uint8 key rows of a batch of states, with their level: the keys the enumeration
    gives the same states (for ``_StateIndex.find``)."""
    fields = _state_fields(s)
    fields["level"] = s.level
    return _key_matrix(fields)


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

    def keys(self) -> np.ndarray:
        """(n, b) uint8: every key, in id order."""
        if self.hashed:
            return (np.zeros((0, 0), np.uint8) if self._keys is None
                    else self._keys[:self.n].copy())
        ordered = sorted(self._dict, key=self._dict.__getitem__)
        width = len(ordered[0]) if ordered else 0
        return np.frombuffer(b"".join(ordered), dtype=np.uint8).reshape(len(ordered), width)

    @classmethod
    def from_keys(cls, keys: np.ndarray, hashed: bool = True) -> _StateIndex:
        """The index that gives ``keys`` (n, b), distinct rows, the ids 0..n-1 (what
        ``keys()`` returns)."""
        index = cls(hashed)
        if len(keys):
            keys = np.ascontiguousarray(keys, dtype=np.uint8)
            index.ids(keys, _row_hash(keys) if hashed else None)
        return index

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

    def find(self, mat: np.ndarray) -> np.ndarray:
        """The id of each key row of ``mat`` (n, b), -1 where the state is unknown (nothing is
        added)."""
        if not self.hashed:
            return np.fromiter((self._dict.get(key, -1) for key in _as_bytes(mat)),
                               dtype=np.int64, count=len(mat))
        out = self._lookup(_row_hash(mat)) if self.n else np.full(len(mat), -1, np.int64)
        hit = np.flatnonzero(out >= 0)
        same = (self._keys[out[hit]] == mat[hit]).all(1)  # a hash hit is verified byte for byte
        out[hit[~same]] = -1
        return out

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
