"""Counter-based random numbers for batched engines.

Every random draw inside a step is a pure function of (per-env key, per-env tick, stream id), so a
run is reproducible for a seed, identical on CPU and CUDA (integer arithmetic only), and needs no
generator state to checkpoint beyond the tick counters. The mixer is the "lowbias32" integer hash
(Chris Wellons' hash-prospector), computed in int64 with explicit 32-bit masking so that it never
depends on signed overflow behaviour.
"""

from __future__ import annotations

import hashlib

import torch

MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def hash32(x: torch.Tensor) -> torch.Tensor:
    """Mix a tensor of int64 values in [0, 2**32) into well-spread 32-bit values (same dtype)."""
    x = x & MASK32
    x = ((x ^ (x >> 16)) * 0x21F0AAAD) & MASK32
    x = ((x ^ (x >> 15)) * 0x735A2D97) & MASK32
    return x ^ (x >> 15)


def stream_bits(key: torch.Tensor, tick: torch.Tensor, stream: int) -> torch.Tensor:
    """32 random bits per env for draw number ``tick`` of stream ``stream``.  # (B,) int64"""
    return hash32(hash32(key ^ (stream * _GOLDEN & MASK32)) ^ (tick & MASK32))


def uniform(key: torch.Tensor, tick: torch.Tensor, stream: int) -> torch.Tensor:
    """Uniform float32 in [0, 1) per env, exactly representable (24 bits)."""
    return (stream_bits(key, tick, stream) >> 8).to(torch.float32) * (1.0 / (1 << 24))


def randint(key: torch.Tensor, tick: torch.Tensor, stream: int, high: torch.Tensor | int):
    """Integer in [0, high) per env (high may be a per-env tensor of positive ints)."""
    bits = stream_bits(key, tick, stream) >> 8  # 24 bits; bias < high / 2**24, negligible here
    return bits % high


def derive_seed(root: int, *names: object) -> int:
    """A 63-bit seed for a named sub-component, stable across Python runs and platforms."""
    text = ":".join([str(root), *map(str, names)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1
