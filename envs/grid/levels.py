"""Level banks: seeded, solvable levels per world and split.

A level of a split is drawn from the world's layout generator with a seed derived from (the
spec's content hash, split, index, attempt); a candidate that fails the solvability check is
redrawn with the next attempt. Every level passes a cheap structural check (see
``structural_check``); validation (5 by default) and test (10) levels must also earn a positive
optimal return under the exact oracle (below its state cap); train levels (512) skip the oracle.

Catalogue worlds ship their validation and test banks with oracle values (optimal return, exact
flag, random-policy return, state count; solved with ``CATALOGUE_STATE_CAP`` = 1,000,000 states)
in ``envs/catalogue/levels/<Name>.json``; ``bank`` loads them when the file's content hash
matches the spec (else it regenerates the same levels). The files depend on the component code
too: rebuild them after changing a component's semantics (``--check`` tells whether they are
current). Rebuild them (deterministically, byte for byte) with::

    python -m autoworld.envs.grid.levels --rebuild-catalogue [--worlds NAME ...] [--check]

(hand-written worlds; the generated ones, in ``envs/catalogue/generated/``, are rebuilt by
``python -m autoworld.generator.catalogue --rebuild``). Validation and test banks are drawn and
solved with levels as the batch dimension (``_generate_many``, ``prepare_banks``,
``oracle.solve_many``): the same levels and values as one level at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from collections import OrderedDict, deque
from functools import lru_cache
from pathlib import Path

import numpy as np

from autoworld.atomic import atomic_write
from autoworld.envs.grid.layouts import draw_candidate, neighbours, reachable
from autoworld.envs.grid.level import Level, LevelBank
from autoworld.envs.grid.symbols import PASSABLE, Cell
from autoworld.errors import LevelError
from autoworld.rng import derive_seed

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
DEFAULT_SIZES = {"train": 512, "validation": 5, "test": 10}
EXACT_SPLITS = ("validation", "test")  # splits whose levels are checked with the exact oracle
CATALOGUE_SPLITS = ("validation", "test")  # splits stored in the catalogue level files
MAX_TRIES = 50
RANDOM_EPISODES = 256
# The catalogue files are built once, offline: their oracle values afford a larger state cap than
# the default ``oracle.STATE_CAP`` (which still decides solvability, so the levels are the same).
CATALOGUE_STATE_CAP = 1_000_000
FILE_FORMAT = 1
# Banks kept per process, least recently used first out. A bank is small (512 levels of 11x11
# are ~90 KB), and a POET run with 20 pairs alone uses 40 (train and validation per world):
# a smaller cache made every engine rebuild draw and solve its levels again.
_CACHE_SIZE = 256
_PASSABLE_CODES = frozenset(int(c) for c in PASSABLE)
_cache: OrderedDict[tuple[str, str, str, int], LevelBank] = OrderedDict()

Pos = tuple[int, int]


def level_seed(spec, split: str, index: int, attempt: int = 0) -> int:
    """Seed of level ``index`` of ``split``: disjoint streams per split, stable across runs."""
    return derive_seed(0, spec.content_hash, split, index, attempt) & 0x7FFFFFFF


# ====================================================================== structural check
def _has(spec, kind: str) -> bool:
    return spec.component(kind) is not None


def structural_check(spec, level: Level) -> bool:
    """A cheap check that the level's rewards can be earned (sound for the built-in components).

    The agent's resting cells are found by BFS under the world's movement (ice sliding,
    teleporters and wrap-around included; stochastic components at their calm outcome), never
    resting on deadly cells (lava with ``hazard``, the goal with ``inverted_goal``, unless the
    world also pays for entering them) and treating boxes as walls. Locked doors open once a key
    is reachable (``keys_doors``). Then every reward source the level holds must be reachable
    within ``max_steps`` moves: a goal (``reach_goal``), a lava cell (``inverted_goal``), every
    coin (``collect_items``), every checkpoint (``ordered_subgoals``), another cell
    (``coverage``); with ``box_on_target`` every box must be pushable onto a target with the
    other boxes held still. A level without any reward source passes (there is nothing to
    reach; the validator's reliability stage judges such worlds).
    """
    g = level.grid.copy()
    wrap = _has(spec, "wrap_edges")
    dist = _resting_steps(spec, g, level.agent_pos)
    if _has(spec, "keys_doors") and _touches(dist >= 0, g == Cell.KEY, wrap):
        g[g == Cell.KEY] = Cell.EMPTY
        g[g == Cell.DOOR_LOCKED] = Cell.DOOR_OPEN
        dist = _resting_steps(spec, g, level.agent_pos)
    within = (dist >= 0) & (dist <= spec.max_steps)
    checks = []
    for cells, every in _reward_sources(spec, g):
        checks.append(within[cells].all() if every else within[cells].any())
    if "coverage" in {c.kind for c in spec.reward}:
        checks.append(int(within.sum()) > 1)
    if "box_on_target" in {c.kind for c in spec.reward} and (g == Cell.BOX).any() \
            and (g == Cell.TARGET).any():
        checks.append(_boxes_pushable(spec, g, level.agent_pos))
    return all(bool(c) for c in checks)


def _reward_sources(spec, g: np.ndarray) -> list[tuple[np.ndarray, bool]]:
    """(cells (H, W) bool, all of them needed) for every reward component whose cells the
    level holds (coverage and boxes are checked separately)."""
    rewards = {c.kind for c in spec.reward}
    out = []
    for kind, codes, every in (
        ("reach_goal", (Cell.GOAL,), False),
        ("inverted_goal", (Cell.LAVA,), False),
        ("collect_items", (Cell.COIN,), True),
        ("ordered_subgoals", (Cell.CHECKPOINT_1, Cell.CHECKPOINT_2, Cell.CHECKPOINT_3), True),
    ):
        cells = np.isin(g, [int(c) for c in codes])
        if kind in rewards and cells.any():
            out.append((cells, every))
    return out


def _has_reward_source(spec, level: Level) -> bool:
    """Whether some reward component could pay on this level (its cells are present); reward
    kinds this module does not know are assumed to."""
    known = {"reach_goal", "inverted_goal", "collect_items", "ordered_subgoals", "coverage",
             "box_on_target", "hazard", "step_penalty", "distance_shaping"}
    kinds = {c.kind for c in spec.reward}
    g = level.grid
    boxes = (g == Cell.BOX).any() and (g == Cell.TARGET).any()
    return (bool(kinds - known) or "coverage" in kinds or bool(_reward_sources(spec, g))
            or ("box_on_target" in kinds and bool(boxes)))


def _touches(stops: np.ndarray, cells: np.ndarray, wrap: bool) -> bool:
    for r, c in np.argwhere(cells):
        if any(stops[q] for q in neighbours(cells.shape, (int(r), int(c)), wrap)):
            return True
    return False


def _resting_steps(spec, g: np.ndarray, agent: Pos) -> np.ndarray:
    """(H, W) int32: fewest moves to come to rest on each cell, -1 where the agent cannot (see
    ``structural_check``; turns are not counted)."""
    wrap, slide = _has(spec, "wrap_edges"), _has(spec, "ice_sliding")
    rewards = {c.kind for c in spec.reward}
    # a cell is deadly when entering it only costs; a paying cell is a terminal target
    deadly, terminal = set(), set()
    if "reach_goal" in rewards:
        terminal.add(int(Cell.GOAL))
    if "inverted_goal" in rewards:
        terminal.add(int(Cell.LAVA))
        if "reach_goal" not in rewards:
            deadly.add(int(Cell.GOAL))
    if "hazard" in rewards and "inverted_goal" not in rewards:
        deadly.add(int(Cell.LAVA))
    pads = {}
    if _has(spec, "teleporters"):
        a, b = np.argwhere(g == Cell.TELEPORT_A), np.argwhere(g == Cell.TELEPORT_B)
        if len(a) and len(b):
            pa, pb = (int(a[0][0]), int(a[0][1])), (int(b[0][0]), int(b[0][1]))
            pads = {pa: pb, pb: pa}
    h, w = g.shape
    cells = g.ravel().tolist()  # flat Python ints: this BFS is hot in bank building
    passable = [c in _PASSABLE_CODES for c in cells]
    nbr = _neighbour_table(h, w, wrap)
    flat_pads = {a[0] * w + a[1]: b[0] * w + b[1] for a, b in pads.items()}
    ice = int(Cell.ICE)

    def step(p: int, d: int) -> int:
        q = nbr[p][d]
        if q < 0 or not passable[q]:
            return -1
        if slide:
            for _ in range(max(h, w)):
                if cells[q] != ice:
                    break
                n = nbr[q][d]
                if n < 0 or not passable[n]:
                    break
                q = n
        return flat_pads.get(q, q)

    start = agent[0] * w + agent[1]
    dist = [-1] * (h * w)
    dist[start] = 0
    queue = deque([start])
    while queue:
        p = queue.popleft()
        if cells[p] in terminal and p != start:
            continue
        for d in range(4):
            q = step(p, d)
            if q < 0 or dist[q] >= 0 or cells[q] in deadly:
                continue
            dist[q] = dist[p] + 1
            queue.append(q)
    return np.array(dist, dtype=np.int32).reshape(h, w)


@lru_cache(maxsize=64)
def _neighbour_table(h: int, w: int, wrap: bool) -> tuple[tuple[int, ...], ...]:
    """Flat index of the neighbour of every cell in each direction (-1: off the grid)."""
    table = []
    for r in range(h):
        for c in range(w):
            row = []
            for d in range(4):
                q = _step((r, c), d, h, w, wrap)
                row.append(-1 if q is None else q[0] * w + q[1])
            table.append(tuple(row))
    return tuple(table)


def _step(p: Pos, d: int, h: int, w: int, wrap: bool) -> Pos | None:
    dr, dc = ((0, 1), (1, 0), (0, -1), (-1, 0))[d]
    r, c = p[0] + dr, p[1] + dc
    if wrap:
        return r % h, c % w
    return (r, c) if 0 <= r < h and 0 <= c < w else None


def _boxes_pushable(spec, g: np.ndarray, agent: Pos) -> bool:
    """Every box can be pushed onto a target with the other boxes held still (plain moves)."""
    boxes = [(int(r), int(c)) for r, c in np.argwhere(g == Cell.BOX)]
    if not boxes or not _has(spec, "pushable_boxes"):
        return False
    return all(_box_reaches_target(spec, g, box, agent) for box in boxes)


def _box_reaches_target(spec, g: np.ndarray, box: Pos, agent: Pos) -> bool:
    wrap = _has(spec, "wrap_edges")
    h, w = g.shape
    g = g.copy()
    g[box] = Cell.EMPTY
    walk = np.isin(g, [int(c) for c in PASSABLE])
    if _has(spec, "hazard"):
        walk &= g != Cell.LAVA
    box_ok = np.isin(g, [Cell.EMPTY, Cell.TARGET])
    seen: set[tuple[Pos, int]] = set()
    queue = deque([(box, agent)])
    while queue:
        b, a = queue.popleft()
        free = walk.copy()
        free[b] = False
        reach = reachable(free, a, wrap)
        key = (b, int(np.flatnonzero(reach)[0]))
        if key in seen:
            continue
        seen.add(key)
        for d in range(4):
            behind, ahead = _step(b, (d + 2) % 4, h, w, wrap), _step(b, d, h, w, wrap)
            if behind is not None and ahead is not None and reach[behind] and box_ok[ahead]:
                if g[ahead] == Cell.TARGET:
                    return True
                queue.append((ahead, b))
    return False


# ====================================================================== solvability
def is_solvable(spec, level: Level, exact: bool = False) -> bool:
    """Whether ``level`` is solvable: it passes ``structural_check`` and, with ``exact`` (below
    the oracle's state cap), the exact optimal return is positive or a positive reward is
    reachable (unless the level holds no reward source at all)."""
    return _check(spec, level, exact)[0]


def _check(spec, level: Level, exact: bool):
    if not structural_check(spec, level):
        return False, None
    if not exact:
        return True, None
    from autoworld.envs.grid.oracle import solve

    res = solve(spec, level, plan=False)
    if not res.exact:  # above the state cap: the structural check decides
        return True, res
    earns = res.optimal_return > 0 or res.positive_reachable
    return earns or not _has_reward_source(spec, level), res


def _precheck(spec) -> None:
    """Fail early, with the fix, on layouts that can never be solved in this world."""
    lay = spec.layout
    locked = lay.kind == "doorkey" or (lay.kind == "rooms" and lay.locked_doors > 0)
    if locked and not _has(spec, "keys_doors"):
        raise LevelError(f"{spec.name}: layout {lay.kind!r} places a locked door but the world "
                         "has no 'keys_doors' transition; add it or remove the locked door")
    if lay.kind == "sokoban" and not _has(spec, "pushable_boxes"):
        rewards = {c.kind for c in spec.reward}
        if "box_on_target" in rewards:
            raise LevelError(f"{spec.name}: 'box_on_target' needs the 'pushable_boxes' "
                             "transition; add it")


def _generate(spec, split: str, index: int, exact: bool):
    why = "make sure the reward's objects can be reached (lower wall/lava densities, add the " \
          "objects the reward needs, or enlarge the world)"
    for attempt in range(MAX_TRIES):
        try:
            level = draw_candidate(spec, level_seed(spec, split, index, attempt))
        except LevelError as exc:  # an unlucky draw (e.g. the agent walled in): redraw
            why = str(exc)
            continue
        ok, res = _check(spec, level, exact)
        if ok:
            return level, res
    raise LevelError(f"{spec.name}: no solvable {spec.layout.kind!r} level after {MAX_TRIES} "
                     f"tries; {why}")


def _generate_many(spec, split: str | list[str], indices: list[int], exact: bool,
                   state_cap: int | None = None,
                   state_budget: int | None = None) -> list[tuple[Level, object]]:
    """``_generate`` for several indices at once, with identical results: attempt ``a`` of every
    index still open is drawn and checked together, and the exact oracle solves all the
    attempt's candidates in one batched pass (``oracle.solve_many``). ``split`` may also be a
    list with the split of each index. Returns (level, oracle result or None) per index."""
    from autoworld.envs.grid.oracle import STATE_CAP, solve_many

    cap = STATE_CAP if state_cap is None else state_cap
    splits = [split] * len(indices) if isinstance(split, str) else list(split)
    keys = list(zip(splits, indices, strict=True))
    done: dict[tuple[str, int], tuple[Level, object]] = {}
    why = "make sure the reward's objects can be reached (lower wall/lava densities, add the " \
          "objects the reward needs, or enlarge the world)"
    open_ = list(dict.fromkeys(keys))
    for attempt in range(MAX_TRIES):
        if not open_:
            break
        drawn: list[tuple[tuple[str, int], Level]] = []
        for i in open_:
            try:
                level = draw_candidate(spec, level_seed(spec, i[0], i[1], attempt))
            except LevelError as exc:  # an unlucky draw (e.g. the agent walled in): redraw
                why = str(exc)
                continue
            if structural_check(spec, level):
                drawn.append((i, level))
        results = (solve_many(spec, [lv for _, lv in drawn], plan=False, state_cap=cap,
                              state_budget=state_budget)
                   if exact else [None] * len(drawn))
        for (i, level), res in zip(drawn, results, strict=True):
            if res is None or not res.exact:  # above the state cap: the structural check decides
                ok = True
            else:
                ok = (res.optimal_return > 0 or res.positive_reachable
                      or not _has_reward_source(spec, level))
            if ok:
                done[i] = (level, res)
        open_ = [i for i in open_ if i not in done]
    if open_:
        raise LevelError(f"{spec.name}: no solvable {spec.layout.kind!r} level after "
                         f"{MAX_TRIES} tries; {why}")
    return [done[i] for i in keys]


def generate_level(spec, split: str, index: int, exact: bool | None = None) -> Level:
    """Level ``index`` of ``split``: the first candidate seed that passes the solvability check
    (exact oracle for validation/test unless ``exact`` says otherwise)."""
    _precheck(spec)
    exact = split in EXACT_SPLITS if exact is None else exact
    return _generate(spec, split, index, exact)[0]


# ====================================================================== banks
def bank(spec, split: str = "train", size: int | None = None) -> LevelBank:
    """The ``split`` bank of ``spec`` with ``size`` levels (default per split).

    Catalogue banks come from ``envs/catalogue/levels/<Name>.json`` when it matches the spec's
    content hash and holds enough levels; ``info`` then carries the per-level oracle values
    (``optimal_return``, ``optimal_exact``, ``random_return``, ``num_states``). Banks are cached
    per (name, content hash, split, size); callers get a copy.
    """
    if split not in SPLITS:
        raise LevelError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    n = DEFAULT_SIZES[split] if size is None else int(size)
    if n < 1:
        raise LevelError(f"bank size must be >= 1 (got {n})")
    key = (spec.name, spec.content_hash, split, n)  # the name picks the catalogue file
    cached = _cache.get(key)
    if cached is None:
        cached = _load_catalogue_bank(spec, split, n) or _build_bank(spec, split, n)
        _store(spec, split, n, cached)
    else:
        _cache.move_to_end(key)
    return LevelBank(cached.grids.copy(), cached.agent_pos.copy(), cached.agent_dir.copy(),
                     cached.seeds.copy(), {k: list(v) if isinstance(v, list) else v
                                           for k, v in cached.info.items()})


def prepare_banks(spec, sizes: dict[str, int], state_budget: int | None = None) -> None:
    """Build the ``bank(spec, split, size)`` banks of several splits in one batched pass (the
    exact splits' candidates are solved together) and cache them; later ``bank`` calls return
    them. The banks are identical to those ``bank`` builds one split at a time. Catalogue banks
    and banks already cached are left alone. ``state_budget``: the most reachable states the
    exact oracle may enumerate per batched pass (``oracle.StateBudgetExceeded`` above it)."""
    todo = {}
    for split, n in sizes.items():
        if split not in SPLITS or int(n) < 1:
            continue
        if (spec.name, spec.content_hash, split, int(n)) in _cache:
            continue
        if _load_catalogue_bank(spec, split, int(n)) is not None:
            continue
        todo[split] = int(n)
    exact = [s for s in todo if s in EXACT_SPLITS]
    if len(exact) < (1 if state_budget is not None else 2):
        return  # nothing to batch across splits
    _precheck(spec)
    pairs = [(s, i) for s in exact for i in range(todo[s])]
    out = _generate_many(spec, [s for s, _ in pairs], [i for _, i in pairs], exact=True,
                         state_budget=state_budget)
    at = 0
    for s in exact:
        _store(spec, s, todo[s], _bank_from(out[at:at + todo[s]], True))
        at += todo[s]


def _store(spec, split: str, n: int, b: LevelBank) -> None:
    while len(_cache) >= _CACHE_SIZE:
        _cache.popitem(last=False)
    _cache[(spec.name, spec.content_hash, split, n)] = b


def _build_bank(spec, split: str, n: int) -> LevelBank:
    _precheck(spec)
    exact = split in EXACT_SPLITS
    return _bank_from(_generate_many(spec, split, list(range(n)), exact), exact)


def _bank_from(out: list, exact: bool) -> LevelBank:
    b = LevelBank.from_levels([lv for lv, _ in out])
    b.info["source"] = "generated"
    if exact:
        b.info["optimal_return"] = [res.optimal_return for _, res in out]
        b.info["optimal_exact"] = [res.exact for _, res in out]
        b.info["num_states"] = [res.num_states for _, res in out]
    return b


_stored = [True]  # whether ``bank`` may serve catalogue level files (see ``fresh_banks``)


@contextlib.contextmanager
def fresh_banks():
    """Within this block ``bank`` never reads catalogue level files (and starts from an empty
    cache): every level is drawn and solved anew. Catalogue rebuilds use it, so that a check
    compares freshly computed files with the committed ones."""
    _stored.append(False)
    _cache.clear()
    try:
        yield
    finally:
        _stored.pop()
        _cache.clear()


def catalogue_levels_path(spec) -> Path:
    """The catalogue level file of ``spec`` (hand-written or generated world)."""
    from autoworld.envs.catalogue import levels_path

    return levels_path(spec.name)


def _load_catalogue_bank(spec, split: str, n: int) -> LevelBank | None:
    if not _stored[-1]:
        return None
    path = catalogue_levels_path(spec)
    if split not in CATALOGUE_SPLITS or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["splits"][split]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable level file %s (%s); regenerating", path, exc)
        return None
    if data.get("content_hash") != spec.content_hash:
        log.info("%s: level file is for another version of the world; regenerating", path)
        return None
    if len(entries) < n:
        return None
    entries = entries[:n]
    b = LevelBank.from_levels([Level.from_json(e) for e in entries])
    b.info["source"] = "catalogue"
    for field in ("optimal_return", "optimal_exact", "random_return", "num_states"):
        b.info[field] = [e[field] for e in entries]
    return b


# ====================================================================== catalogue files
def _num(x: float) -> float:
    return round(float(x), 6) + 0.0  # fixed precision, no negative zero


def catalogue_file_text(spec) -> str:
    """The JSON text of ``spec``'s catalogue level file (deterministic, byte for byte)."""
    from autoworld.envs.grid.oracle import solve
    from autoworld.envs.grid.scores import random_returns

    _precheck(spec)
    splits = {}
    for split in CATALOGUE_SPLITS:
        entries = []
        # the same levels as ``bank`` draws on the fly; only the values get the larger cap
        drawn = _generate_many(spec, split, list(range(DEFAULT_SIZES[split])), exact=True)
        rnds = random_returns(spec, [lv for lv, _ in drawn], episodes=RANDOM_EPISODES, seed=0,
                              device="cpu")
        for i, ((level, res), rnd) in enumerate(zip(drawn, rnds, strict=True)):
            if not res.exact:
                res = solve(spec, level, plan=False, state_cap=CATALOGUE_STATE_CAP)
            entries.append({
                **level.to_json(),
                "optimal_return": _num(res.optimal_return),
                "optimal_exact": bool(res.exact),
                "random_return": _num(rnd),
                "num_states": int(res.num_states),
            })
            log.info("%s %s[%d]: optimal %.4f (%s, %d states), random %.4f", spec.name, split,
                     i, res.optimal_return, "exact" if res.exact else "bound", res.num_states,
                     rnd)
        splits[split] = entries
    data = {
        "format": FILE_FORMAT,
        "name": spec.name,
        "content_hash": spec.content_hash,
        "state_cap": CATALOGUE_STATE_CAP,
        "random_episodes": RANDOM_EPISODES,
        "splits": splits,
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def rebuild_catalogue(names: list[str] | None = None, check: bool = False) -> list[str]:
    """Regenerate the catalogue level files (all worlds, or ``names``).

    Returns the names whose file changed (with ``check``, nothing is written: the names whose
    file is missing or out of date).
    """
    from autoworld.envs.catalogue import list_worlds, load_world

    known = list_worlds(generated=False)  # generated worlds: autoworld.generator.catalogue
    names = names or known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise LevelError(f"unknown catalogue world(s) {unknown}; use one of {known}")
    changed = []
    for name in names:
        spec = load_world(name)
        if getattr(spec, "family", "grid") != "grid":
            continue
        path = catalogue_levels_path(spec)
        text = catalogue_file_text(spec)
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old == text:
            continue
        changed.append(name)
        if not check:
            atomic_write(path, text)
            log.info("wrote %s", path)
    _cache.clear()
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m autoworld.envs.grid.levels --rebuild-catalogue``."""
    parser = argparse.ArgumentParser(prog="python -m autoworld.envs.grid.levels",
                                     description="Build the catalogue level banks.")
    parser.add_argument("--rebuild-catalogue", action="store_true",
                        help="regenerate envs/catalogue/levels/<Name>.json")
    parser.add_argument("--worlds", nargs="*", default=None, help="only these worlds")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a file is missing or out of date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.rebuild_catalogue:
        parser.print_help()
        return 2
    try:
        changed = rebuild_catalogue(args.worlds, check=args.check)
    except LevelError as exc:
        log.error("error: %s", exc)
        return 1
    if args.check and changed:
        log.error("out of date: %s", ", ".join(changed))
        return 1
    log.info("%d file(s) %s", len(changed), "out of date" if args.check else "written")
    return 0


if __name__ == "__main__":
    from autoworld.envs.grid.levels import main as _main  # the importable module, not __main__

    raise SystemExit(_main())
