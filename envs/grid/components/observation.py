"""Observation components of the grid family.

Every world has exactly one view (``full_grid`` or ``egocentric``) that writes ``image``
(B, R, C) uint8 symbol codes; filters (``line_of_sight``, ``random_mask``, ``symbol_noise``,
``permuted_symbols``) then rewrite the image in that order; outputs (``agent_features``,
``text``, ``rgb``) add the keys ``features``, ``text`` and ``rgb``.

Random filters draw per-cell bits from ``autoworld.rng`` (per-env key, tick, stream), so a noisy
observation is reproducible for a seed and device. Their stream ids are 30..49 plus the
observation's ``stream_offset`` (the true final observation uses other streams).
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from autoworld import rng
from autoworld.envs.grid.components.registry import ComponentParams, GridComponent, register
from autoworld.envs.grid.symbols import (
    AGENT_SYMBOL_BY_DIR,
    CELL,
    CHARS,
    DIR_DELTAS,
    NUM_CELL_TYPES,
    NUM_SYMBOLS,
    Cell,
)
from autoworld.envs.grid.tiles import tile_atlas

STREAM_RANDOM_MASK = 30
STREAM_NOISE_HIT = 31
STREAM_NOISE_SYMBOL = 32
# Cells that block the line of sight.
OPAQUE = (CELL.WALL, CELL.DOOR_LOCKED, CELL.BOX, CELL.BOX_ON_TARGET)
_INV24 = 1.0 / (1 << 24)


def _merge_view(ctx, comp: GridComponent, img: torch.Tensor) -> None:
    """Write a view's image into ctx.image, padding to the batch's common image shape."""
    from autoworld.envs.grid.engine import pad_image

    rows, cols = ctx.engine.image_shape
    img = pad_image(img, rows, cols)
    if comp.all_active or ctx.image is None:
        ctx.image = img if comp.all_active else torch.where(comp.active[:, None, None], img,
                                                            int(CELL.PAD))
    else:
        ctx.image = torch.where(comp.active[:, None, None], img, ctx.image)


@register
class FullGrid(GridComponent):
    """The whole grid, top-down, with the agent drawn as an arrow symbol (fully observable)."""

    class Params(ComponentParams):
        kind: Literal["full_grid"] = "full_grid"

    factor = "observation"
    name = "full_grid"
    stage = "view"
    order = 10

    def setup(self) -> None:
        eng = self.engine
        self.agent_sym = torch.tensor([int(s) for s in AGENT_SYMBOL_BY_DIR], dtype=torch.uint8,
                                      device=self.device)
        # cells of the frame outside an env's own world show PAD (mixed-size batches only)
        rows = torch.arange(eng.H, device=self.device)[None, :, None]
        cols = torch.arange(eng.W, device=self.device)[None, None, :]
        outside = (rows >= eng.height[:, None, None]) | (cols >= eng.width[:, None, None])
        self.outside = outside if bool(outside.any()) else None

    def image_shape(self) -> tuple[int, int]:
        return self.engine.H, self.engine.W

    def apply(self, ctx) -> None:
        eng, s = self.engine, ctx.state
        img = s.grid[:, : eng.H * eng.W].clone()
        img.scatter_(1, s.pos[:, None], self.agent_sym[s.dir][:, None])
        img = img.view(-1, eng.H, eng.W)
        if self.outside is not None:
            img = torch.where(self.outside, int(CELL.PAD), img)
        _merge_view(ctx, self, img)


@register
class Egocentric(GridComponent):
    """A k x k view in front of the agent, rotated so that the agent looks up from the middle of
    the bottom row (MiniGrid's partial view). Cells outside the world read as walls."""

    class Params(ComponentParams):
        kind: Literal["egocentric"] = "egocentric"
        size: int = Field(7, ge=3, le=11, description="View side k (odd).")

        @field_validator("size")
        @classmethod
        def _odd(cls, v: int) -> int:
            if v % 2 == 0:
                raise ValueError(f"must be odd (the agent is in the middle column); use {v + 1}")
            return v

    factor = "observation"
    name = "egocentric"
    stage = "view"
    order = 20

    def setup(self) -> None:
        for p in self.unique_params:
            if p.size % 2 == 0:
                raise ValueError(f"egocentric.size must be odd (got {p.size}); use {p.size + 1}")
        eng = self.engine
        # the view side of the batch: the largest size among the worlds that use this view (the
        # neutral default of envs without it must not widen everyone's image)
        self.K = K = max([p.size for p in self.active_params()]
                         + [eng.layout.get("egocentric_size", 0)])
        # table[g, pos*4 + dir, i*K + j] = flat index of view cell (i, j), built vectorized
        table = np.full((len(eng.geometries), eng.P * 4, K * K), eng.sentinel, dtype=np.int64)
        deltas = np.array(DIR_DELTAS)  # (4, 2)
        fwd = deltas  # (4, 2): forward per direction
        right = deltas[[1, 2, 3, 0]]  # (4, 2): the agent's right per direction
        f = (K - 1 - np.arange(K))[:, None]  # (K, 1) cells ahead
        lat = (np.arange(K) - K // 2)[None, :]  # (1, K) cells to the right
        r = np.arange(eng.H)[:, None, None, None, None]
        c = np.arange(eng.W)[None, :, None, None, None]
        dr = (f[None] * fwd[:, 0, None, None] + lat[None] * right[:, 0, None, None])[None, None]
        dc = (f[None] * fwd[:, 1, None, None] + lat[None] * right[:, 1, None, None])[None, None]
        for gi, g in enumerate(eng.geometries):
            rows, cols = r + dr, c + dc  # (H, W, 4, K, K)
            if g.wrap:
                rows, cols = rows % g.height, cols % g.width
            inside = (rows >= 0) & (rows < eng.H) & (cols >= 0) & (cols < eng.W)
            flat = np.where(inside, rows * eng.W + cols, eng.sentinel)
            table[gi, : eng.H * eng.W * 4] = flat.reshape(eng.H * eng.W * 4, K * K)
        self.table = torch.from_numpy(table.reshape(-1, K * K)).to(self.device)
        self.geom_off = (eng.geom_id * (eng.P * 4)) if len(eng.geometries) > 1 else None
        sizes = {p.size for p in self.active_params()}
        self.window = None
        # smaller views in a mixed batch (or in a bucket of one): cells outside their window are PAD
        if len(sizes) > 1 or K not in sizes:
            i = torch.arange(K, device=self.device)[None, :, None]
            j = torch.arange(K, device=self.device)[None, None, :]
            k = self.column("size", torch.long)[:, None, None]
            self.window = (i >= K - k) & ((j - K // 2).abs() <= k // 2)

    def image_shape(self) -> tuple[int, int]:
        return self.K, self.K

    def _index_buffer(self, rows: int) -> torch.Tensor | None:
        if torch.compiler.is_compiling():
            return None
        buf = getattr(self, "_buf", None)
        if buf is None or buf.shape[0] != rows:
            buf = self._buf = torch.empty((rows, self.K * self.K), dtype=torch.long,
                                          device=self.device)
        return buf

    def apply(self, ctx) -> None:
        s = ctx.state
        idx = s.pos * 4 + s.dir
        if self.geom_off is not None:
            idx = idx + self.geom_off
        # The (B, K*K) int64 index is an internal temporary: reuse one buffer for it, since a
        # fresh multi-MB allocation per step costs page faults that dominate the gather itself.
        buf = self._index_buffer(idx.shape[0])
        cells = torch.index_select(self.table, 0, idx, out=buf) if buf is not None else \
            self.table.index_select(0, idx)
        flat = s.grid.gather(1, cells)  # (B, K*K)
        # as in MiniGrid, the agent's own cell shows what it carries (the key), if anything
        me = (self.K - 1) * self.K + self.K // 2
        flat[:, me] = torch.where(s.carrying > 0, CELL.KEY, flat[:, me])
        img = flat.view(-1, self.K, self.K)
        if self.window is not None:
            img = torch.where(self.window, img, int(CELL.PAD))
        _merge_view(ctx, self, img)


# ======================================================================== filters
def _apply_to_view(ctx, K: int, fn) -> None:
    """Rewrite the top-left K x K block of ctx.image (where an egocentric view sits) with fn."""
    B, R, C = ctx.image.shape
    if (R, C) == (K, K):
        ctx.image = fn(ctx.image)
    else:
        img = ctx.image.clone()
        img[:, :K, :K] = fn(ctx.image[:, :K, :K])
        ctx.image = img


def _segment_crosses(p0: tuple[Fraction, Fraction], p1: tuple[Fraction, Fraction],
                     r: int, c: int) -> bool:
    """Whether the segment p0-p1 passes through the open unit square [r, r+1] x [c, c+1] over a
    positive length (touching a corner or an edge does not count). Exact (Liang-Barsky)."""
    t0, t1 = Fraction(0), Fraction(1)
    for a0, a1, lo in ((p0[0], p1[0], r), (p0[1], p1[1], c)):
        d = a1 - a0
        if d == 0:
            if not lo < a0 < lo + 1:
                return False
            continue
        e, x = (lo - a0) / d, (lo + 1 - a0) / d
        t0, t1 = max(t0, min(e, x)), min(t1, max(e, x))
    return t1 > t0


@functools.lru_cache(maxsize=16)
def sight_lines(K: int) -> np.ndarray:
    """(K*K, M) int64: for each cell of a K x K egocentric view, the view cells whose interior the
    straight segment from the agent's cell centre (bottom row, middle column) to that cell's
    centre crosses, both ends excluded; padded with ``K*K`` (an always-clear slot)."""
    ar, ac = K - 1, K // 2
    a = (Fraction(2 * ar + 1, 2), Fraction(2 * ac + 1, 2))
    lines: list[list[int]] = []
    for i in range(K):
        for j in range(K):
            b = (Fraction(2 * i + 1, 2), Fraction(2 * j + 1, 2))
            lines.append([
                r * K + c
                for r in range(min(i, ar), max(i, ar) + 1)
                for c in range(min(j, ac), max(j, ac) + 1)
                if (r, c) not in ((i, j), (ar, ac)) and _segment_crosses(a, b, r, c)
            ])
    M = max(1, max(len(x) for x in lines))
    out = np.full((K * K, M), K * K, dtype=np.int64)
    for n, cells in enumerate(lines):
        out[n, : len(cells)] = cells
    return out


@register
class LineOfSight(GridComponent):
    """Occlusion for the egocentric view: a view cell shows as unseen when the straight line from
    the agent's cell to it passes through a wall, a locked door or a box. The agent's own cell and
    the first opaque cells on each line stay visible. Needs the egocentric view."""

    class Params(ComponentParams):
        kind: Literal["line_of_sight"] = "line_of_sight"

    factor = "observation"
    name = "line_of_sight"
    stage = "filter"
    order = 10

    def setup(self) -> None:
        view = self.engine.components.get("egocentric")
        if view is None:
            raise ValueError("line_of_sight needs the 'egocentric' view in the world")
        self.K = view.K
        self.lines = torch.from_numpy(sight_lines(self.K)).to(self.device)  # (K*K, M)
        self.lines_flat = self.lines.reshape(-1)
        self.opaque = torch.zeros(256, dtype=torch.bool, device=self.device)
        self.opaque[[int(c) for c in OPAQUE]] = True

    def apply(self, ctx) -> None:
        K = self.K

        def occlude(view: torch.Tensor) -> torch.Tensor:  # (B, K, K) uint8
            flat = view.reshape(view.shape[0], K * K)
            B = flat.shape[0]
            opaque = self.opaque.index_select(0, flat.reshape(-1).long()).view(B, K * K)
            opaque = torch.cat([opaque, torch.zeros_like(opaque[:, :1])], dim=1)  # clear slot
            # gather with an expanded index: much faster on CPU than index_select along dim 1
            on_line = opaque.gather(1, self.lines_flat.expand(B, -1)).view(B, K * K, -1)
            hidden = on_line.any(dim=-1)  # (B, K*K)
            return torch.where(hidden, int(CELL.UNSEEN), flat).view_as(view)

        if self.all_active:
            _apply_to_view(ctx, K, occlude)
            return
        # mixed batch: occlude only the envs whose world has line of sight
        idx = self.active_index
        img = ctx.image
        sub = img.index_select(0, idx)
        sub[:, :K, :K] = occlude(sub[:, :K, :K])
        ctx.image = img.clone().index_copy_(0, idx, sub)


def _cell_salts(engine) -> torch.Tensor:
    """(32, 32) int64 per-cell salts indexed by the cell's (row, column) in the image: an env
    draws the same noise whatever the image shape of its batch (so a bucket of a mixed batch
    draws what the whole batch would, see ``autoworld.envs.grid.bucketed``). Take
    ``salts[:R, :C]`` for an R x C image."""
    rc = torch.arange(32, dtype=torch.long)[:, None] * 64 + torch.arange(32, dtype=torch.long)
    return rng.hash32(rc * 2 + 1).to(engine.device)


def _frame_salts(comp: GridComponent) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Salts of a filter's envs indexed by the cell's place in the env's own view: ``(T, 32,
    32)`` tables and the ``(B,)`` table of each env (None: one table for all). A k x k
    egocentric view inside a batch's K x K window (k < K) sits at row offset K - k and column
    offset K // 2 - k // 2 of the image; alone it is at the corner. Indexing its salts by the
    image cell would make its noise depend on the other worlds of its batch."""
    salts = _cell_salts(comp.engine)
    ego = comp.engine.components.get("egocentric")
    if ego is None or ego.window is None:  # no view is offset: the image's own cells
        return salts[None], None
    K = ego.K
    k = torch.where(ego.active, ego.column("size", torch.long), K)  # other views: no offset
    codes, index = torch.unique((K - k) * 64 + (K // 2 - k // 2), return_inverse=True)
    rc = torch.arange(32, device=salts.device)
    tables = []
    for code in codes.tolist():
        dr, dc = divmod(code, 64)
        tables.append(salts[(rc - dr).clamp(min=0)][:, (rc - dc).clamp(min=0)])
    return torch.stack(tables), index


def _salts_for(tables: torch.Tensor, index: torch.Tensor | None, rows: torch.Tensor | None,
               R: int, C: int) -> torch.Tensor:
    """The (R*C,) salts of every env, or (n, R*C) per env when views are offset."""
    flat = tables[:, :R, :C].reshape(tables.shape[0], R * C)
    if index is None:
        return flat[0]
    return flat[index if rows is None else index.index_select(0, rows)]


def _cell_bits(key: torch.Tensor, tick: torch.Tensor, stream: int,
               salts: torch.Tensor) -> torch.Tensor:
    """(B, N) int64: 32 random bits per env and image cell for draw ``tick`` of ``stream``;
    ``salts`` (N,) for every env or (B, N) per env."""
    base = rng.stream_bits(key, tick, stream)  # (B,)
    return rng.hash32(base[:, None] ^ (salts if salts.dim() == 2 else salts[None, :]))


def _filter_rows(comp: GridComponent, ctx, fn) -> None:
    """Apply ``fn(flat_image_rows, key_rows, tick_rows, env_rows)`` to the envs that have the
    component only (a static index: no host sync); per-cell noise for a whole mixed batch would
    otherwise cost as much as the rest of the step."""
    img = ctx.image
    flat = img.reshape(img.shape[0], -1)
    s = ctx.state
    if comp.all_active:
        ctx.image = fn(flat, s.key, s.tick, None).view_as(img)
        return
    idx = comp.active_index
    new = fn(flat.index_select(0, idx), s.key.index_select(0, idx),
             s.tick.index_select(0, idx), idx)
    ctx.image = flat.clone().index_copy_(0, idx, new).view_as(img)


@register
class RandomMask(GridComponent):
    """Random occlusion: every step each cell of the view is independently hidden (shown as
    unseen) with probability ``fraction``. Padding and, in a full-grid view, the agent's mark
    are kept; an egocentric view has no agent mark (the agent is always at its bottom centre),
    and the cell under the agent can be hidden like any other."""

    class Params(ComponentParams):
        kind: Literal["random_mask"] = "random_mask"
        fraction: float = Field(
            0.2, ge=0.0, le=0.9, description="Probability that a cell is hidden in a step."
        )

    factor = "observation"
    name = "random_mask"
    stage = "filter"
    order = 20

    def setup(self) -> None:
        # zero for envs without the component: they never hide a cell
        self.fraction = torch.where(self.active, self.column("fraction"), 0.0)  # (B,)
        self.salt_tables, self.salt_index = _frame_salts(self)

    def apply(self, ctx) -> None:
        stream = STREAM_RANDOM_MASK + ctx.stream_offset
        R, C = ctx.image.shape[1:]

        def mask(flat, key, tick, rows):
            fraction = self.fraction if rows is None else self.fraction.index_select(0, rows)
            salts = _salts_for(self.salt_tables, self.salt_index, rows, R, C)
            bits = _cell_bits(key, tick, stream, salts)
            u = (bits >> 8).to(torch.float32) * _INV24
            hide = (u < fraction[:, None]) & (flat < NUM_CELL_TYPES)
            return torch.where(hide, int(CELL.UNSEEN), flat)

        _filter_rows(self, ctx, mask)


@register
class SymbolNoise(GridComponent):
    """Sensor noise: every step each visible cell of the view is replaced, with probability
    ``prob``, by a uniformly random cell symbol (any of the level cell types). Unseen cells,
    padding and, in a full-grid view, the agent's mark are kept (an egocentric view has no
    agent mark: the cell under the agent can be replaced like any other)."""

    class Params(ComponentParams):
        kind: Literal["symbol_noise"] = "symbol_noise"
        prob: float = Field(
            0.1, ge=0.0, le=0.5, description="Probability that a cell shows a random symbol."
        )

    factor = "observation"
    name = "symbol_noise"
    stage = "filter"
    order = 30

    def setup(self) -> None:
        self.prob = torch.where(self.active, self.column("prob"), 0.0)  # (B,)
        self.salt_tables, self.salt_index = _frame_salts(self)

    def apply(self, ctx) -> None:
        off = ctx.stream_offset
        R, C = ctx.image.shape[1:]

        def noisy(flat, key, tick, rows):
            prob = self.prob if rows is None else self.prob.index_select(0, rows)
            salts = _salts_for(self.salt_tables, self.salt_index, rows, R, C)
            hit = _cell_bits(key, tick, STREAM_NOISE_HIT + off, salts)
            sym = _cell_bits(key, tick, STREAM_NOISE_SYMBOL + off, salts)
            u = (hit >> 8).to(torch.float32) * _INV24
            replace = (u < prob[:, None]) & (flat < NUM_CELL_TYPES)
            noise = ((sym >> 8) % NUM_CELL_TYPES).to(torch.uint8)
            return torch.where(replace, noise, flat)

        _filter_rows(self, ctx, noisy)


CELL_NAMES = tuple(Cell(c).name.lower() for c in range(NUM_CELL_TYPES))
CellName = Literal[CELL_NAMES]  # type: ignore[valid-type]
SymbolPair = Annotated[list[CellName], Field(min_length=2, max_length=2)]  # type: ignore[valid-type]


@register
class PermutedSymbols(GridComponent):
    """Inverse semantics: the observation shows each listed cell as its partner and vice versa
    (``[["lava", "goal"]]``: lava looks like the goal and the goal like lava). The world itself
    is unchanged; only what the agent sees is swapped."""

    class Params(ComponentParams):
        kind: Literal["permuted_symbols"] = "permuted_symbols"
        swaps: list[SymbolPair] = Field(  # type: ignore[valid-type]
            default_factory=lambda: [["lava", "goal"]], min_length=1, max_length=8,
            description="Pairs of lower-case cell names whose symbols are exchanged; a cell "
            "appears in at most one pair.",
        )

        @model_validator(mode="after")
        def _check_swaps(self):
            seen: set[str] = set()
            for a, b in self.swaps:
                if a == b:
                    raise ValueError(f"swap [{a!r}, {b!r}] names one cell twice; pair two cells")
                for name in (a, b):
                    if name in seen:
                        raise ValueError(f"cell {name!r} is in two swaps; use each cell once")
                    seen.add(name)
            return self

    factor = "observation"
    name = "permuted_symbols"
    stage = "filter"
    order = 40

    def setup(self) -> None:
        lut = np.tile(np.arange(NUM_SYMBOLS, dtype=np.uint8), (len(self.unique_params), 1))
        for u, (p, active) in enumerate(zip(self.unique_params, self.unique_active, strict=True)):
            if not active:
                continue
            for a, b in p.swaps:
                ia, ib = CELL_NAMES.index(a), CELL_NAMES.index(b)
                lut[u, ia], lut[u, ib] = ib, ia
        same = bool((lut == lut[:1]).all())
        # (NUM_SYMBOLS,) one table for all envs, else (B, NUM_SYMBOLS) uint8
        self.shared = torch.from_numpy(lut[0]).to(self.device) if same else None
        self.lut = self.shared[None].expand(self.engine.num_envs, -1) if same else self.per_env(lut)

    def apply(self, ctx) -> None:
        img = ctx.image
        if self.shared is not None:
            ctx.image = self.shared.index_select(0, img.reshape(-1).long()).view_as(img)
        else:
            lut = self.lut.index_select(0, self.active_index)  # (N, NUM_SYMBOLS)

            def permute(flat, key, tick, rows):
                return lut.gather(1, flat.long())

            _filter_rows(self, ctx, permute)


# ======================================================================== outputs
@register
class AgentFeatures(GridComponent):
    """Adds ``features``, 8 floats about the agent: row / height, column / width, its direction
    one-hot (east, south, west, north), whether it carries something (0/1), and t / max_steps."""

    class Params(ComponentParams):
        kind: Literal["agent_features"] = "agent_features"

    factor = "observation"
    name = "agent_features"
    stage = "output"
    order = 10

    def setup(self) -> None:
        eng = self.engine
        self.inv_h = 1.0 / eng.height.to(torch.float32)
        self.inv_w = 1.0 / eng.width.to(torch.float32)
        self.inv_t = 1.0 / eng.max_steps.to(torch.float32)
        self.eye = torch.eye(4, dtype=torch.float32, device=self.device)

    def output_spec(self) -> dict[str, tuple[tuple[int, ...], torch.dtype, float, float]]:
        return {"features": ((8,), torch.float32, 0.0, 1.0)}

    def apply(self, ctx) -> None:
        s, W = ctx.state, self.engine.W
        feats = torch.cat([
            ((s.pos // W).to(torch.float32) * self.inv_h)[:, None],
            ((s.pos % W).to(torch.float32) * self.inv_w)[:, None],
            self.eye.index_select(0, s.dir),
            (s.carrying > 0).to(torch.float32)[:, None],
            (s.t.to(torch.float32) * self.inv_t)[:, None],
        ], dim=1)  # (B, 8)
        if not self.all_active:
            feats = torch.where(self.active[:, None], feats, 0.0)
        ctx.outputs["features"] = feats


def image_to_text(image: np.ndarray) -> str:
    """An (R, C) image of symbol codes as text: one character per cell (``symbols.CHARS``), rows
    joined with newlines. For language agents and logs."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image_to_text takes one (rows, cols) image, got shape {image.shape}")
    chars = np.array([CHARS[Cell(s)] for s in range(NUM_SYMBOLS)])
    return "\n".join("".join(row) for row in chars[image.astype(np.int64)])


@register
class Text(GridComponent):
    """Adds ``text``: the image as ASCII character codes (one per cell, the same characters as
    ASCII levels: ``#`` wall, ``G`` goal, ``~`` lava, ``^>v<`` the agent, space unseen)."""

    class Params(ComponentParams):
        kind: Literal["text"] = "text"

    factor = "observation"
    name = "text"
    stage = "output"
    order = 20

    def setup(self) -> None:
        codes = [ord(CHARS[Cell(s)]) for s in range(NUM_SYMBOLS)]
        self.lut = torch.tensor(codes, dtype=torch.uint8, device=self.device)  # (NUM_SYMBOLS,)

    def output_spec(self) -> dict[str, tuple[tuple[int, ...], torch.dtype, float, float]]:
        return {"text": (self.engine.image_shape, torch.uint8, 0, 127)}

    def apply(self, ctx) -> None:
        img = ctx.image
        text = self.lut.index_select(0, img.reshape(-1).long()).view_as(img)  # (B, R, C) uint8
        if not self.all_active:
            text = torch.where(self.active[:, None, None], text, 0)
        ctx.outputs["text"] = text


@register
class Rgb(GridComponent):
    """Adds ``rgb``: the image drawn as pixels, ``tile`` x ``tile`` per cell (uint8 H x W x 3,
    the colours of the renderer). In a batch of worlds with different tiles the largest is used."""

    class Params(ComponentParams):
        kind: Literal["rgb"] = "rgb"
        tile: int = Field(8, ge=2, le=16, description="Pixels per cell side.")

    factor = "observation"
    name = "rgb"
    stage = "output"
    order = 30

    def setup(self) -> None:
        self.tile = max([p.tile for p in self.active_params()]
                        + [self.engine.layout.get("rgb_tile", 0)])
        self.atlas = torch.from_numpy(tile_atlas(self.tile)).to(self.device)  # (S, t, t, 3)

    def output_spec(self) -> dict[str, tuple[tuple[int, ...], torch.dtype, float, float]]:
        R, C = self.engine.image_shape
        return {"rgb": ((R * self.tile, C * self.tile, 3), torch.uint8, 0, 255)}

    def _draw(self, image: torch.Tensor) -> torch.Tensor:
        N, R, C = image.shape
        t = self.tile
        tiles = self.atlas.index_select(0, image.reshape(-1).long()).view(N, R, C, t, t, 3)
        return tiles.permute(0, 1, 3, 2, 4, 5).reshape(N, R * t, C * t, 3)

    def apply(self, ctx) -> None:
        if self.all_active:
            ctx.outputs["rgb"] = self._draw(ctx.image)
            return
        # mixed batch: draw only the envs whose world asks for pixels, zeros elsewhere
        B, R, C = ctx.image.shape
        t = self.tile
        rgb = torch.zeros((B, R * t, C * t, 3), dtype=torch.uint8, device=ctx.image.device)
        drawn = self._draw(ctx.image.index_select(0, self.active_index))
        ctx.outputs["rgb"] = rgb.index_copy_(0, self.active_index, drawn)
