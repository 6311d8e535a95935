"""The POET agent: a small MLP over a fixed-size symbol view, evaluated for many parameter
vectors at once.

Every agent must act in every world (transfers, PATA-EC), so the policy reads only the symbol
``image`` observation, padded (with the PAD symbol) or cropped to ``obs_size x obs_size``. A
learned symbol embedding feeds one tanh hidden layer and the 7 action logits. Parameters are one
flat vector (D,); ``logits`` applies R parameter rows to R groups of observations with batched
matrix products, so a whole population of perturbed agents in heterogeneous worlds is one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from autoworld import rng
from autoworld.envs.grid.symbols import CELL, NUM_SYMBOLS

NUM_ACTIONS = 7
_ACTION_STREAMS = torch.tensor([(0xA511E9B3 * (a + 1)) & rng.MASK32 for a in range(NUM_ACTIONS)])


class PoetPolicy:
    """Layout and batched forward pass of the flat parameter vector.

    Example:
        >>> p = PoetPolicy(obs_size=5, embed_dim=2, hidden=8)
        >>> theta = p.init(seed=0)
        >>> sym = torch.zeros(3, 4, 5, 5, dtype=torch.uint8)  # 3 rows x 4 envs
        >>> tuple(p.logits(theta.expand(3, -1), sym).shape)
        (3, 4, 7)
    """

    def __init__(self, obs_size: int, embed_dim: int, hidden: int,
                 value_head: bool = False) -> None:
        self.S, self.E, self.H = int(obs_size), int(embed_dim), int(hidden)
        self.value_head = bool(value_head)
        cells = self.S * self.S
        self.shapes = {"embed": (NUM_SYMBOLS, self.E), "w1": (cells * self.E, self.H),
                       "b1": (self.H,), "w2": (self.H, NUM_ACTIONS), "b2": (NUM_ACTIONS,)}
        if self.value_head:  # PPO's critic; ES agents have none
            self.shapes.update({"wv": (self.H, 1), "bv": (1,)})
        self.offsets: dict[str, tuple[int, int]] = {}
        i = 0
        for name, shape in self.shapes.items():
            n = math.prod(shape)
            self.offsets[name] = (i, i + n)
            i += n
        self.dim = i

    def init(self, seed: int) -> torch.Tensor:
        """A fresh parameter vector (D,) float32, deterministic for ``seed``."""
        gen = torch.Generator().manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)
        parts = []
        for name, shape in self.shapes.items():
            if name.startswith("b"):
                parts.append(torch.zeros(math.prod(shape)))
                continue
            fan_in = shape[0] if name != "embed" else 1
            scale = 0.1 if name in ("w2", "wv") else 1.0
            parts.append(torch.randn(math.prod(shape), generator=gen) * scale / math.sqrt(fan_in))
        return torch.cat(parts)

    def _part(self, params: torch.Tensor, name: str) -> torch.Tensor:
        a, b = self.offsets[name]
        return params[:, a:b].reshape(params.shape[0], *self.shapes[name])

    def fit_view(self, image: torch.Tensor, layout: ViewLayout | None = None) -> torch.Tensor:
        """(B, r, c) uint8 symbols padded with PAD / cropped to (B, S, S).

        Without ``layout`` the image is anchored at its top-left. With it (see ``ViewLayout``)
        the input of an env depends on its world and state alone, not on the batch it is
        stepped in: full-grid views stay anchored at the top-left, and an egocentric view (the
        top-left K x K block of the image, the agent at its bottom centre) is anchored at the
        bottom centre of the S x S input, cropped around the agent when K > S."""
        if layout is None or layout.ego is None:
            return self._top_left(image)
        if layout.all_ego:
            return self._bottom_centre(image, layout.K)
        # a mixed batch: the full-grid rows as they are, the egocentric rows moved (only they
        # are computed twice; a where over whole candidates cost ~10% of the policy's step)
        out = self._top_left(image)
        if out.data_ptr() == image.data_ptr():  # a view of the image: write into a copy
            out = out.clone()
        idx = layout.ego_index
        return out.index_copy_(0, idx, self._bottom_centre(image.index_select(0, idx), layout.K))

    def _top_left(self, image: torch.Tensor) -> torch.Tensor:
        B, r, c = image.shape
        if r >= self.S and c >= self.S:
            return image[:, : self.S, : self.S]
        out = torch.full((B, self.S, self.S), int(CELL.PAD), dtype=image.dtype,
                         device=image.device)
        out[:, : min(r, self.S), : min(c, self.S)] = image[:, : self.S, : self.S]
        return out

    def _bottom_centre(self, image: torch.Tensor, K: int) -> torch.Tensor:
        S = self.S
        dr, dc = S - K, S // 2 - K // 2  # image (i, j) -> input (i + dr, j + dc)
        r0, r1 = max(0, -dr), min(K, S - dr)
        c0, c1 = max(0, -dc), min(K, S - dc)
        if (dr, dc) == (0, 0) and image.shape[1:] == (S, S):
            return image
        out = torch.full((image.shape[0], S, S), int(CELL.PAD), dtype=image.dtype,
                         device=image.device)
        out[:, r0 + dr:r1 + dr, c0 + dc:c1 + dc] = image[:, r0:r1, c0:c1]
        return out

    def unpack(self, params: torch.Tensor | Antithetic) -> dict[str, Any]:
        """The (R, D) rows as contiguous per-layer tensors (R, *shape); unpack once per rollout,
        not once per step. An ``Antithetic`` population keeps its first layer factored (centre
        and noise apart, see ``Antithetic``); its other, small layers are materialized."""
        if isinstance(params, Antithetic):
            return params.unpack(self)
        return {name: self._part(params, name).contiguous() for name in self.shapes}

    def logits(self, params: torch.Tensor | dict[str, Any], symbols: torch.Tensor
               ) -> torch.Tensor:
        """Logits (R, N, 7) of parameter rows ``params`` ((R, D) or ``unpack``ed) on their own
        observations ``symbols`` (R, N, S, S) uint8."""
        p = params if isinstance(params, dict) else self.unpack(params.to(symbols.device))
        return torch.baddbmm(p["b2"][:, None], self._hidden(p, symbols), p["w2"])  # (R, N, 7)

    def _hidden(self, p: dict[str, Any], symbols: torch.Tensor) -> torch.Tensor:
        R, N = symbols.shape[:2]
        K = p["embed"].shape[1]
        # row r's symbol k is entry r*K + k of the flattened embeddings (one index_select is
        # much faster than 2-d advanced indexing)
        idx = symbols.reshape(R, N * self.S * self.S).long()
        idx = idx + torch.arange(R, device=idx.device)[:, None] * K
        x = p["embed"].reshape(R * K, self.E).index_select(0, idx.reshape(-1))
        x = x.reshape(R, N, self.S * self.S * self.E)
        if "w1" in p:
            return torch.tanh(torch.baddbmm(p["b1"][:, None], x, p["w1"]))  # (R, N, H)
        # factored first layer: x (w_c + c e) = x w_c + c (x e); the two antithetic members of
        # a noise vector (a "unit") share one product with it, so each noise vector is read once
        # per step, and each job's centre once
        coef = p["w1_coef"]  # (U, 2): +-sigma of the unit's two members
        U, C = coef.shape[0], x.shape[-1]
        xu = x.reshape(U, 2 * N, C)
        noise = torch.bmm(xu, p["w1_eps"])  # (U, 2N, H)
        noise = noise * coef.repeat_interleave(N, 1)[..., None]
        centre = [xj.reshape(-1, C) @ p["w1_center"][j]  # one product per job with units
                  for j, xj in enumerate(torch.split(xu, p["w1_split"])) if xj.shape[0]]
        h = torch.cat(centre).reshape(U, 2 * N, self.H) + noise
        return torch.tanh(h.reshape(R, N, self.H) + p["b1"][:, None])  # (R, N, H)

    def heads(self, params: dict[str, torch.Tensor], symbols: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (R, N, 7) and values (R, N) of ``unpack``ed rows (needs the value head)."""
        h = self._hidden(params, symbols)
        logits = torch.baddbmm(params["b2"][:, None], h, params["w2"])
        value = torch.baddbmm(params["bv"][:, None], h, params["wv"])[..., 0]
        return logits, value


@dataclass(frozen=True)
class ViewLayout:
    """Where the envs of one engine have their symbol view in its ``image``: a batch of worlds
    pads every view to one shape, and an egocentric view of side k sits at the bottom centre of
    the batch's K x K window (K the largest side among its worlds), which is the whole image
    when the world is stepped alone. ``PoetPolicy.fit_view`` uses it so that an agent sees the
    same input in a world whatever worlds share its batch (one call, or one per world as the
    Ray and serial backends run them)."""

    ego: torch.Tensor | None  # (N,) bool: the env's world has an egocentric view; None: none has
    all_ego: bool
    K: int  # the batch's egocentric window side
    ego_index: torch.Tensor | None = None  # (n,) the rows of ``ego`` that are True

    def __post_init__(self) -> None:
        if self.ego is not None and self.ego_index is None:
            object.__setattr__(self, "ego_index", self.ego.nonzero().flatten())

    @classmethod
    def of(cls, specs, env_world, device: str | torch.device = "cpu") -> ViewLayout:
        """The layout of an engine of ``specs`` whose env b steps ``specs[env_world[b]]``."""
        sizes = [getattr(sp.component("egocentric"), "size", 0) for sp in specs]
        used = sorted(set(env_world))
        K = max((sizes[w] for w in used), default=0)
        if K == 0:
            return cls(None, False, 0)
        ego = torch.tensor([sizes[w] > 0 for w in env_world], device=device)
        return cls(ego, bool(ego.all()), K)


@dataclass
class Antithetic:
    """An ES population of ``J`` jobs without its (R, D) rows: row ``j * P + 2 i + s`` (P =
    2 * half members per job) is ``center[j] + (-1)**s * sigma[j] * eps[j, i]``, the layout of
    ``learners.es.antithetic_noise``. The POET policy's first layer holds almost all of its
    weights and every member's differ, so its forward pass reads them from memory at every env
    step; keeping centre and noise apart lets both members of an antithetic pair share one read
    of ``eps[j, i]``, and the centre is read once per job."""

    center: torch.Tensor  # (J, D)
    eps: torch.Tensor  # (J, half, D)
    sigma: torch.Tensor  # (J,)

    @property
    def shape(self) -> tuple[int, int]:
        """(R, D) of the rows it stands for."""
        J, half, D = self.eps.shape
        return (J * 2 * half, D)

    def to(self, device: torch.device | str) -> Antithetic:
        return Antithetic(self.center.to(device), self.eps.to(device), self.sigma.to(device))

    def rows(self) -> torch.Tensor:
        """The (R, D) rows, materialized (for tests and small populations)."""
        sign = torch.tensor([1.0, -1.0], device=self.eps.device)
        coef = self.sigma[:, None, None, None] * sign[None, None, :, None]  # (J, 1, 2, 1)
        rows = self.center[:, None, None] + coef * self.eps[:, :, None]  # (J, half, 2, D)
        return rows.reshape(self.shape)

    def unit_job(self) -> torch.Tensor:
        """(U,) the job of each unit (antithetic pair of rows 2u, 2u+1)."""
        J, half, _ = self.eps.shape
        return torch.arange(J, device=self.eps.device).repeat_interleave(half)

    def unpack(self, policy: PoetPolicy) -> dict[str, Any]:
        J, half, _ = self.eps.shape
        sign = torch.tensor([1.0, -1.0], device=self.eps.device)
        coef = self.sigma[:, None, None] * sign[None, None, :]  # (J, 1, 2)
        out: dict[str, Any] = {}
        for name, shape in policy.shapes.items():
            a, b = policy.offsets[name]
            if name == "w1":
                out["w1_center"] = self.center[:, a:b].reshape(J, *shape).contiguous()
                # a view (each noise vector's block is contiguous): bmm reads it in place
                out["w1_eps"] = self.eps[:, :, a:b].reshape(J * half, *shape)
                out["w1_coef"] = coef.expand(J, half, 2).reshape(J * half, 2)
                out["w1_split"] = [half] * J  # units per job, in job order
                continue
            part = self.center[:, None, None, a:b] + coef[..., None] * self.eps[:, :, None, a:b]
            out[name] = part.reshape(J * 2 * half, *shape).contiguous()
        return out


def take_units(params: dict[str, Any], units: torch.Tensor, group: int, job: torch.Tensor
               ) -> dict[str, Any]:
    """The ``unpack``ed parameters restricted to ``units`` (sorted (U',) indices; a unit is
    ``group`` consecutive rows: 2 for an ``Antithetic`` population, else 1); ``job`` (U,) is
    the job of every unit."""
    rows = (units[:, None] * group + torch.arange(group, device=units.device)).reshape(-1)
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k == "w1_center":
            out[k] = v
        elif k == "w1_split":
            out[k] = torch.bincount(job[units], minlength=len(v)).tolist()
        elif k.startswith("w1_"):
            out[k] = v.index_select(0, units)
        else:
            out[k] = v.index_select(0, rows)
    return out


def sample_actions(logits: torch.Tensor, keys: torch.Tensor, t: int) -> torch.Tensor:
    """Actions (B,) from logits (B, 7) by the Gumbel-max trick with counter-based noise: env b's
    draw at step t depends only on (keys[b], t), never on its position in the batch, so a
    rollout gives the same actions however the work is split."""
    consts = _ACTION_STREAMS.to(keys.device)
    bits = rng.hash32(rng.hash32(keys[:, None] ^ consts[None, :]) ^ (t & rng.MASK32))
    u = ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))  # (B, 7) in (0, 1)
    return (logits - torch.log(-torch.log(u))).argmax(dim=-1)
