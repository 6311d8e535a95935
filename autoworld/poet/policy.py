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

    def fit_view(self, image: torch.Tensor) -> torch.Tensor:
        """(B, r, c) uint8 symbols padded with PAD / cropped to (B, S, S)."""
        B, r, c = image.shape
        if r >= self.S and c >= self.S:
            return image[:, : self.S, : self.S]
        out = torch.full((B, self.S, self.S), int(CELL.PAD), dtype=image.dtype,
                         device=image.device)
        out[:, : min(r, self.S), : min(c, self.S)] = image[:, : self.S, : self.S]
        return out

    def unpack(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        """The (R, D) rows as contiguous per-layer tensors (R, *shape); unpack once per rollout,
        not once per step."""
        return {name: self._part(params, name).contiguous() for name in self.shapes}

    def logits(self, params: torch.Tensor | dict[str, torch.Tensor], symbols: torch.Tensor
               ) -> torch.Tensor:
        """Logits (R, N, 7) of parameter rows ``params`` ((R, D) or ``unpack``ed) on their own
        observations ``symbols`` (R, N, S, S) uint8."""
        p = params if isinstance(params, dict) else self.unpack(params.to(symbols.device))
        return torch.baddbmm(p["b2"][:, None], self._hidden(p, symbols), p["w2"])  # (R, N, 7)

    def _hidden(self, p: dict[str, torch.Tensor], symbols: torch.Tensor) -> torch.Tensor:
        R, N = symbols.shape[:2]
        idx = symbols.reshape(R, N * self.S * self.S).long()
        x = p["embed"][torch.arange(R, device=idx.device)[:, None], idx]  # (R, N*S*S, E)
        x = x.reshape(R, N, self.S * self.S * self.E)
        return torch.tanh(torch.baddbmm(p["b1"][:, None], x, p["w1"]))  # (R, N, H)

    def heads(self, params: dict[str, torch.Tensor], symbols: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (R, N, 7) and values (R, N) of ``unpack``ed rows (needs the value head)."""
        h = self._hidden(params, symbols)
        logits = torch.baddbmm(params["b2"][:, None], h, params["w2"])
        value = torch.baddbmm(params["bv"][:, None], h, params["wv"])[..., 0]
        return logits, value


def sample_actions(logits: torch.Tensor, keys: torch.Tensor, t: int) -> torch.Tensor:
    """Actions (B,) from logits (B, 7) by the Gumbel-max trick with counter-based noise: env b's
    draw at step t depends only on (keys[b], t), never on its position in the batch, so a
    rollout gives the same actions however the work is split."""
    consts = _ACTION_STREAMS.to(keys.device)
    bits = rng.hash32(rng.hash32(keys[:, None] ^ consts[None, :]) ^ (t & rng.MASK32))
    u = ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))  # (B, 7) in (0, 1)
    return (logits - torch.log(-torch.log(u))).argmax(dim=-1)
