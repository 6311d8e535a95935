"""Layout generators of the grid family: seed -> Level.

Each generator draws walls, doors, keys and layout-specific objects with a numpy Generator (never
the global RNG) and returns ``(grid, agent)``; ``agent`` is None when the layout leaves the agent
to ``place_objects``, which then scatters the spec's ``objects`` on floor reachable from the agent
and keeps a safe path to every object free of lava and cracked floor. Everything is a pure
function of the seed. Generators only produce candidates: ``levels.generate_level`` checks
solvability and retries with a new seed.

The grid-graph helpers here (``neighbours``, ``reachable``, ``walk_distances``, ``path_to``) are
shared with the structural solvability check in ``levels.py`` and the oracle's bounds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

import numpy as np

from autoworld.envs.grid.level import Level
from autoworld.envs.grid.symbols import DIR_DELTAS, PASSABLE, Cell
from autoworld.errors import LevelError

Pos = tuple[int, int]
Generated = tuple[np.ndarray, "Pos | None"]

RESERVED = 250  # temporary cell code that keeps a cell taken while others are placed
CHECKPOINTS = (Cell.CHECKPOINT_1, Cell.CHECKPOINT_2, Cell.CHECKPOINT_3)

# Cells a path may cross when placing objects: the engine's passable cells without lava, plus
# keys (picked up from the next cell, then floor), locked doors (every generator puts the key on
# the agent's side) and boxes (pushed out of the way).
_WALK = np.zeros(256, dtype=bool)
_WALK[[int(c) for c in PASSABLE]] = True
_WALK[[Cell.LAVA]] = False
_WALK[[Cell.KEY, Cell.DOOR_LOCKED, Cell.BOX, Cell.BOX_ON_TARGET]] = True
# Cells that must stay reachable from the agent (paths to them are kept free of hazards).
_IMPORTANT = (Cell.GOAL, Cell.COIN, Cell.KEY, Cell.DOOR_LOCKED, Cell.BOX, Cell.TARGET,
              Cell.TELEPORT_A, Cell.TELEPORT_B, *CHECKPOINTS)


# ====================================================================== small helpers
def _walled(h: int, w: int, border: bool = True) -> np.ndarray:
    g = np.zeros((h, w), dtype=np.uint8)
    if border:
        g[0, :] = g[-1, :] = g[:, 0] = g[:, -1] = Cell.WALL
    return g


def _free_cells(g: np.ndarray, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """(N, 2) coordinates of EMPTY cells, optionally within rows r0:r1, cols c0:c1."""
    mask = g == Cell.EMPTY
    if region is not None:
        r0, r1, c0, c1 = region
        sub = np.zeros_like(mask)
        sub[r0:r1, c0:c1] = True
        mask &= sub
    return np.argwhere(mask)


def _pick(rng: np.random.Generator, cells: np.ndarray) -> Pos:
    if len(cells) == 0:
        raise LevelError("no free cell left to place an object; lower the object counts or "
                         "the wall/lava densities, or enlarge the world")
    r, c = cells[rng.integers(len(cells))]
    return int(r), int(c)


def neighbours(shape: tuple[int, int], pos: Pos, wrap: bool) -> Iterable[Pos]:
    h, w = shape
    r, c = pos
    for dr, dc in DIR_DELTAS:
        nr, nc = r + dr, c + dc
        if wrap:
            yield nr % h, nc % w
        elif 0 <= nr < h and 0 <= nc < w:
            yield nr, nc


def walk_distances(passable: np.ndarray, start: Pos, wrap: bool = False) -> np.ndarray:
    """BFS step counts (H, W) int32 from ``start`` over cells where ``passable`` (H, W) bool is
    true (-1: unreachable). The start cell counts as passable."""
    dist = np.full(passable.shape, -1, dtype=np.int32)
    dist[start] = 0
    queue = deque([start])
    while queue:
        p = queue.popleft()
        for q in neighbours(passable.shape, p, wrap):
            if dist[q] < 0 and passable[q]:
                dist[q] = dist[p] + 1
                queue.append(q)
    return dist


def reachable(passable: np.ndarray, start: Pos, wrap: bool = False) -> np.ndarray:
    """(H, W) bool: cells connected to ``start`` through ``passable`` (H, W) bool cells (the
    start included), by vectorized flood fill."""
    reach = np.zeros(passable.shape, dtype=bool)
    reach[start] = True
    ok = passable.copy()
    ok[start] = True
    while True:
        grown = reach.copy()
        if wrap:
            for axis in (0, 1):
                grown |= np.roll(reach, 1, axis) | np.roll(reach, -1, axis)
        else:
            grown[1:] |= reach[:-1]
            grown[:-1] |= reach[1:]
            grown[:, 1:] |= reach[:, :-1]
            grown[:, :-1] |= reach[:, 1:]
        grown &= ok
        if (grown == reach).all():
            return reach
        reach = grown


def path_to(dist: np.ndarray, target: Pos, wrap: bool = False) -> list[Pos] | None:
    """A shortest path (start first) to ``target`` read back from ``walk_distances``; a target
    that is not itself passable is entered from its nearest reached neighbour. None when
    unreachable."""
    if dist[target] < 0:
        reached = [q for q in neighbours(dist.shape, target, wrap) if dist[q] >= 0]
        if not reached:
            return None
        prev = min(reached, key=lambda q: (dist[q], q))
        head = path_to(dist, prev, wrap)
        return None if head is None else [*head, target]
    path = [target]
    while dist[path[-1]] > 0:
        p = path[-1]
        path.append(min((q for q in neighbours(dist.shape, p, wrap) if dist[q] == dist[p] - 1),
                        key=lambda q: q))
    return path[::-1]


def _protected_cells(g: np.ndarray, agent: Pos, wrap: bool) -> np.ndarray:
    """(H, W) bool: the agent's cell and shortest paths from it to every important object."""
    dist = walk_distances(_WALK[g], agent, wrap)
    keep = np.zeros(g.shape, dtype=bool)
    keep[agent] = True
    for r, c in np.argwhere(np.isin(g, [int(x) for x in _IMPORTANT])):
        path = path_to(dist, (int(r), int(c)), wrap)
        for p in path or ():
            keep[p] = True
        if g[r, c] == Cell.BOX:  # room to push a box from any side
            for q in neighbours(g.shape, (int(r), int(c)), wrap):
                keep[q] = True
    return keep


def _scatter(g: np.ndarray, rng: np.random.Generator, code: int, n: int,
             allowed: np.ndarray) -> None:
    """Turn up to ``n`` EMPTY cells where ``allowed`` (H, W) bool into ``code``."""
    cells = np.argwhere((g == Cell.EMPTY) & allowed)
    n = min(n, len(cells))
    if n > 0:
        for i in rng.choice(len(cells), size=n, replace=False):
            g[tuple(cells[i])] = code


# ====================================================================== generators
def doorkey(spec, rng: np.random.Generator) -> Generated:
    """MiniGrid DoorKey: a wall column at 2..w-3 with one locked door, the key and the agent on
    its left, the goal in the bottom-right corner."""
    h, w = spec.height, spec.width
    g = _walled(h, w)
    split = int(rng.integers(2, w - 2))  # wall column
    g[:, split] = Cell.WALL
    door_row = int(rng.integers(1, h - 2))
    g[door_row, split] = Cell.DOOR_LOCKED
    g[h - 2, w - 2] = Cell.GOAL
    agent_region = (0, h, 0, split)
    # MiniGrid places the agent first, then the key, both on the left of the wall.
    agent = _pick(rng, _free_cells(g, agent_region))
    g[agent] = RESERVED
    key = _pick(rng, _free_cells(g, agent_region))
    g[key] = Cell.KEY
    g[agent] = Cell.EMPTY
    return g, agent


def open_room(spec, rng: np.random.Generator) -> Generated:
    """One room; ``wall_density`` of its interior turned into wall blocks."""
    lay = spec.layout
    g = _walled(spec.height, spec.width, lay.border)
    if lay.wall_density > 0:
        inner = np.argwhere(g == Cell.EMPTY)
        n = int(round(lay.wall_density * len(inner)))
        for i in rng.choice(len(inner), size=n, replace=False):
            g[tuple(inner[i])] = Cell.WALL
    return g, None


def _splits(size: int, parts: int) -> list[int]:
    """Wall lines (including both borders) that cut ``size`` cells into ``parts`` rooms."""
    return [round(i * (size - 1) / parts) for i in range(parts + 1)]


def rooms(spec, rng: np.random.Generator) -> Generated:
    """A rooms_y x rooms_x grid of rooms with one doorway in every shared wall.

    With ``locked_doors=1`` a corner room becomes the goal room: it keeps a single doorway, a
    locked door, and the agent and key are placed in the other rooms (removing a corner room
    keeps the others connected).
    """
    lay = spec.layout
    h, w = spec.height, spec.width
    rx, ry = lay.rooms_x, lay.rooms_y
    if w < 2 * rx + 1 or h < 2 * ry + 1:
        raise LevelError(f"rooms layout: {ry}x{rx} rooms need height >= {2 * ry + 1} and width "
                         f">= {2 * rx + 1}; enlarge the world or use fewer rooms")
    if lay.locked_doors and rx * ry == 1:
        raise LevelError("rooms layout: a locked door needs two rooms; set rooms_x or rooms_y "
                         ">= 2 or locked_doors 0")
    cols, rows = _splits(w, rx), _splits(h, ry)
    g = _walled(h, w)
    for c in cols[1:-1]:
        g[:, c] = Cell.WALL
    for r in rows[1:-1]:
        g[r, :] = Cell.WALL

    def interior(i: int, j: int) -> tuple[int, int, int, int]:
        return rows[i] + 1, rows[i + 1], cols[j] + 1, cols[j + 1]

    # every shared wall: ((room a, room b), doorway cell)
    doors: list[tuple[tuple[Pos, Pos], Pos]] = []
    for i in range(ry):
        for j in range(rx):
            if j + 1 < rx:
                doors.append((((i, j), (i, j + 1)),
                              (int(rng.integers(rows[i] + 1, rows[i + 1])), cols[j + 1])))
            if i + 1 < ry:
                doors.append((((i, j), (i + 1, j)),
                              (rows[i + 1], int(rng.integers(cols[j] + 1, cols[j + 1])))))
    if not lay.locked_doors:
        for _, cell in doors:
            g[cell] = Cell.EMPTY
        return g, None

    corners = sorted({(i, j) for i in (0, ry - 1) for j in (0, rx - 1)})
    goal_room = corners[int(rng.integers(len(corners)))]
    own = [k for k, (pair, _) in enumerate(doors) if goal_room in pair]
    locked = own[int(rng.integers(len(own)))]
    for k, (pair, cell) in enumerate(doors):
        if k == locked:
            g[cell] = Cell.DOOR_LOCKED
        elif goal_room not in pair:
            g[cell] = Cell.EMPTY
    if spec.objects.goal:
        g[_pick(rng, _free_cells(g, interior(*goal_room)))] = Cell.GOAL
    # the agent and the key go inside the other rooms (never in a doorway)
    agent_side = np.zeros((h, w), dtype=bool)
    for i in range(ry):
        for j in range(rx):
            if (i, j) != goal_room:
                r0, r1, c0, c1 = interior(i, j)
                agent_side[r0:r1, c0:c1] = True
    agent_side &= g == Cell.EMPTY
    agent = _pick(rng, np.argwhere(agent_side))
    agent_side[agent] = False
    g[_pick(rng, np.argwhere(agent_side))] = Cell.KEY
    return g, agent


def maze(spec, rng: np.random.Generator) -> Generated:
    """A perfect maze carved by randomized depth-first search over the odd cells, then
    ``braid`` of its dead ends opened into loops."""
    h, w = spec.height, spec.width
    carved = [[False] * w for _ in range(h)]  # plain lists: this loop is hot in bank building
    odd_r, odd_c = range(1, h - 1, 2), range(1, w - 1, 2)
    steps = ((0, 2), (2, 0), (0, -2), (-2, 0))

    def is_cell(r: int, c: int) -> bool:
        return 1 <= r <= h - 2 and 1 <= c <= w - 2 and r % 2 == 1 and c % 2 == 1

    start = (odd_r[int(rng.integers(len(odd_r)))], odd_c[int(rng.integers(len(odd_c)))])
    carved[start[0]][start[1]] = True
    stack = [start]
    while stack:
        r, c = stack[-1]
        options = [(r + dr, c + dc) for dr, dc in steps
                   if is_cell(r + dr, c + dc) and not carved[r + dr][c + dc]]
        if not options:
            stack.pop()
            continue
        nr, nc = options[int(rng.integers(len(options)))]
        carved[(r + nr) // 2][(c + nc) // 2] = True
        carved[nr][nc] = True
        stack.append((nr, nc))

    braid = spec.layout.braid
    if braid > 0:
        def openings(r: int, c: int) -> int:
            return sum(carved[r + dr // 2][c + dc // 2] for dr, dc in steps)

        dead = [(r, c) for r in odd_r for c in odd_c if openings(r, c) == 1]
        order = rng.permutation(len(dead))
        for k in order[: int(round(braid * len(dead)))]:
            r, c = dead[k]
            if openings(r, c) != 1:
                continue  # an earlier braid already opened it
            walls = [(r + dr // 2, c + dc // 2) for dr, dc in steps
                     if is_cell(r + dr, c + dc) and not carved[r + dr // 2][c + dc // 2]]
            if walls:
                wr, wc = walls[int(rng.integers(len(walls)))]
                carved[wr][wc] = True
    g = np.where(np.array(carved), int(Cell.EMPTY), int(Cell.WALL)).astype(np.uint8)
    return g, None


def lava_field(spec, rng: np.random.Generator) -> Generated:
    """An open room with lava pools grown around a random monotone safe path from the agent to
    the goal (the path is never lava)."""
    h, w = spec.height, spec.width
    g = _walled(h, w)
    agent = _pick(rng, _free_cells(g))
    g[agent] = RESERVED
    end = _pick(rng, _free_cells(g))
    g[agent] = Cell.EMPTY
    safe = np.zeros((h, w), dtype=bool)
    r, c = agent
    safe[r, c] = True
    while (r, c) != end:
        moves = []
        if r != end[0]:
            moves.append((r + (1 if end[0] > r else -1), c))
        if c != end[1]:
            moves.append((r, c + (1 if end[1] > c else -1)))
        r, c = moves[int(rng.integers(len(moves)))]
        safe[r, c] = True
    if spec.objects.goal:
        g[end] = Cell.GOAL

    target = int(round(spec.layout.lava_density * (h - 2) * (w - 2)))
    candidates = (g == Cell.EMPTY) & ~safe
    target = min(target, int(candidates.sum()))
    placed = 0
    frontier: list[Pos] = []
    while placed < target:
        if not frontier or rng.random() < 0.25:  # start a new pool
            cells = np.argwhere(candidates)
            cell = tuple(int(x) for x in cells[rng.integers(len(cells))])
        else:
            cell = frontier.pop(int(rng.integers(len(frontier))))
            if not candidates[cell]:
                continue
        g[cell] = Cell.LAVA
        candidates[cell] = False
        placed += 1
        frontier.extend(q for q in neighbours((h, w), cell, False) if candidates[q])
    return g, agent


def sokoban(spec, rng: np.random.Generator) -> Generated:
    """A room with ``boxes`` boxes, none against a wall (so none in a corner), and as many
    targets; the agent is placed by ``place_objects``."""
    lay = spec.layout
    g = _walled(spec.height, spec.width)
    if lay.wall_density > 0:
        inner = np.argwhere(g == Cell.EMPTY)
        n = int(round(lay.wall_density * len(inner)))
        for i in rng.choice(len(inner), size=n, replace=False):
            g[tuple(inner[i])] = Cell.WALL
    wall = g == Cell.WALL
    near_wall = np.zeros_like(wall)
    near_wall[1:] |= wall[:-1]
    near_wall[:-1] |= wall[1:]
    near_wall[:, 1:] |= wall[:, :-1]
    near_wall[:, :-1] |= wall[:, 1:]
    for _ in range(lay.boxes):
        away = np.argwhere((g == Cell.EMPTY) & ~near_wall)
        if len(away) == 0:
            raise LevelError("sokoban layout: no room for a box away from walls; enlarge the "
                             "world or lower boxes/wall_density")
        g[_pick(rng, away)] = Cell.BOX
    for _ in range(lay.boxes):
        g[_pick(rng, _free_cells(g))] = Cell.TARGET
    return g, None


GENERATORS: dict[str, Callable[[object, np.random.Generator], Generated]] = {
    "open_room": open_room,
    "rooms": rooms,
    "maze": maze,
    "lava_field": lava_field,
    "sokoban": sokoban,
    "doorkey": doorkey,
}


def draw_candidate(spec, seed: int) -> Level:
    """One unchecked level of ``spec`` from ``seed`` (solvability is checked by the caller)."""
    rng = np.random.default_rng(seed)
    try:
        gen = GENERATORS[spec.layout.kind]
    except KeyError:
        raise LevelError(f"layout {spec.layout.kind!r} has no generator; use one of "
                         f"{', '.join(GENERATORS)}") from None
    grid, agent = gen(spec, rng)
    grid, agent = place_objects(spec, grid, agent, rng)
    return Level(grid, agent, int(rng.integers(4)), seed)


def place_objects(spec, g: np.ndarray, agent: Pos | None,
                  rng: np.random.Generator) -> tuple[np.ndarray, Pos]:
    """Scatter ``spec.objects`` on free floor and place the agent if the layout did not.

    Order: agent, goal, teleporter pair (``T``/``U``), checkpoints ``1..n``, coins, all on floor
    reachable from the agent; then lava, cracked floor and ice as fractions of the layout's free
    floor. Lava and cracked floor avoid the shortest paths from the agent to every object, so
    the objects stay reachable; ice (enterable) may lie anywhere but under the agent.
    """
    obj = spec.objects
    wrap = spec.component("wrap_edges") is not None
    floor = int((g == Cell.EMPTY).sum())
    if agent is None:
        agent = _pick(rng, _free_cells(g))
    g[agent] = RESERVED
    reach = reachable(_WALK[g], agent, wrap)

    def put(code: int) -> None:
        g[_pick(rng, np.argwhere((g == Cell.EMPTY) & reach))] = code

    if obj.goal and not (g == Cell.GOAL).any():
        put(Cell.GOAL)
    if obj.teleporters:
        put(Cell.TELEPORT_A)
        put(Cell.TELEPORT_B)
    for k in range(obj.checkpoints):
        put(CHECKPOINTS[k])
    for _ in range(obj.coins):
        put(Cell.COIN)
    g[agent] = Cell.EMPTY
    if obj.lava > 0 or obj.cracked > 0 or obj.ice > 0:
        free = ~_protected_cells(g, agent, wrap)
        _scatter(g, rng, Cell.LAVA, int(round(obj.lava * floor)), free)
        _scatter(g, rng, Cell.CRACKED, int(round(obj.cracked * floor)), free)
        anywhere = np.ones(g.shape, dtype=bool)
        anywhere[agent] = False
        _scatter(g, rng, Cell.ICE, int(round(obj.ice * floor)), anywhere)
    return g, agent
