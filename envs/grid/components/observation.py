"""Observation components of the grid family.

Every world has exactly one view (``full_grid`` or ``egocentric``) that writes ``image``
(B, R, C) uint8 symbol codes; filters then rewrite the image in order; outputs add other keys
(``features``, ``text``, ``rgb``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from autoworld.envs.grid.components.registry import ComponentParams, GridComponent, register
from autoworld.envs.grid.symbols import AGENT_SYMBOL_BY_DIR, DIR_DELTAS, Cell


def _merge_view(ctx, comp: GridComponent, img: torch.Tensor) -> None:
    """Write a view's image into ctx.image, padding to the batch's common image shape."""
    from autoworld.envs.grid.engine import pad_image

    rows, cols = ctx.engine.image_shape
    img = pad_image(img, rows, cols)
    if comp.all_active or ctx.image is None:
        ctx.image = img if comp.all_active else torch.where(comp.active[:, None, None], img,
                                                            int(Cell.PAD))
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
            img = torch.where(self.outside, int(Cell.PAD), img)
        _merge_view(ctx, self, img)


@register
class Egocentric(GridComponent):
    """A k x k view in front of the agent, rotated so that the agent looks up from the middle of
    the bottom row (MiniGrid's partial view). Cells outside the world read as walls."""

    class Params(ComponentParams):
        kind: Literal["egocentric"] = "egocentric"
        size: int = Field(7, ge=3, le=11, description="View side k (odd).")

    factor = "observation"
    name = "egocentric"
    stage = "view"
    order = 20

    def setup(self) -> None:
        for p in self.params:
            if p.size % 2 == 0:
                raise ValueError(f"egocentric.size must be odd (got {p.size}); use {p.size + 1}")
        eng = self.engine
        self.K = K = max(p.size for p in self.params)
        # table[g, pos*4 + dir, i*K + j] = flat index of view cell (i, j)
        table = np.full((len(eng.geometries), eng.P * 4, K * K), eng.sentinel, dtype=np.int64)
        for gi, g in enumerate(eng.geometries):
            for r in range(eng.H):
                for c in range(eng.W):
                    for d in range(4):
                        fr, fc = DIR_DELTAS[d]
                        rr, rc = DIR_DELTAS[(d + 1) % 4]
                        row = table[gi, (r * eng.W + c) * 4 + d]
                        for i in range(K):
                            f = K - 1 - i
                            for j in range(K):
                                lat = j - K // 2
                                row[i * K + j] = eng.cell_index(
                                    g, r + f * fr + lat * rr, c + f * fc + lat * rc
                                )
        self.table = torch.from_numpy(table.reshape(-1, K * K)).to(self.device)
        self.geom_off = (eng.geom_id * (eng.P * 4)) if len(eng.geometries) > 1 else None
        sizes = {p.size for p in self.params}
        self.window = None
        if len(sizes) > 1:  # smaller views in a mixed batch: cells outside their window are PAD
            i = torch.arange(K, device=self.device)[None, :, None]
            j = torch.arange(K, device=self.device)[None, None, :]
            k = self.column("size", torch.long)[:, None, None]
            self.window = (i >= K - k) & ((j - K // 2).abs() <= k // 2)

    def image_shape(self) -> tuple[int, int]:
        return self.K, self.K

    def apply(self, ctx) -> None:
        s = ctx.state
        idx = s.pos * 4 + s.dir
        if self.geom_off is not None:
            idx = idx + self.geom_off
        img = s.grid.gather(1, self.table[idx]).view(-1, self.K, self.K)
        if self.window is not None:
            img = torch.where(self.window, img, int(Cell.PAD))
        _merge_view(ctx, self, img)
