"""CUDA-graph replay of a grid engine's step (``GridEngine(..., cuda_graph=True)``).

An eager step launches one kernel per tensor operation, a few hundred per step; at small and
medium batches on a GPU the launches, not the arithmetic, set the speed, and a mixed batch pays
them once per bucket. A CUDA graph records the step's kernels once and replays them with one
launch. The engine contract makes this possible: a step has static shapes, draws its randomness
from counter-based hashes of per-env keys (no generator state), and never synchronizes with the
host.

How it works (``torch.cuda.CUDAGraph``, recorded with ``torch.cuda.graph`` after a warm-up on a
side stream, as the PyTorch CUDA-graph notes prescribe):

- the recorded step reads the state from private static buffers and ends by copying the state it
  produced back into them, so replays chain without leaving the graph;
- before a replay, any state field that the engine's eager code replaced (``reset``,
  ``set_env_keys``, loading a state) is copied into its buffer; the engine's ``state`` afterwards
  wraps the buffers;
- the step's outputs live in the graph's memory and are overwritten by the next replay, so the
  caller gets copies (observations kept across steps stay valid, as with the eager engine).

A replay runs exactly the kernels of the eager step on the same inputs, so it gives the same
trajectories (``tests/grid/test_cuda_graph.py``, run on a GPU). It also wraps a compiled step
(``compile=True``): the compiled kernels are recorded after the warm-up has compiled them.
Forced outcomes (``step(actions, outcomes=...)``, used by the oracle) take the eager path.
"""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from dataclasses import fields
from typing import Any

import torch

from autoworld.errors import EngineError

WARMUP_STEPS = 3  # eager runs on a side stream before recording (allocator, compilation)
ENV_VAR = "AUTOWORLD_CUDA_GRAPH"


def env_default() -> bool:
    """True when the environment asks every CUDA engine to replay recorded graphs
    (``AUTOWORLD_CUDA_GRAPH=1``): engines built with ``cuda_graph=None`` follow it, so a whole
    program (a leaderboard bench, its worker processes) switches without new options."""
    return env_flag(ENV_VAR)


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` reads as on (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _field_names(state) -> list[str]:
    return [f.name for f in fields(state) if f.name != "extras"]


class GraphedStep:
    """One engine's step as a recorded CUDA graph (see the module doc).

    ``emulate=True`` (tests, any device) stands in for the recording: the step runs eagerly on
    the same static buffers and its outputs are copied into the tensors returned at recording,
    which is what a replay does with fixed addresses. It checks the buffer handling on CPU.
    """

    def __init__(self, engine, emulate: bool = False) -> None:
        if not emulate:
            if engine.device.type != "cuda":
                raise EngineError(f"cuda_graph=True needs a CUDA device (the engine is on "
                                  f"{engine.device}); leave it off on CPU")
            if not torch.cuda.is_available():
                raise EngineError("cuda_graph=True needs CUDA, which this torch build cannot use")
        self.engine = engine
        self.emulate = emulate
        self.graph: torch.cuda.CUDAGraph | None = None
        self.recorded = False
        self.buffers: dict[str, torch.Tensor] = {}
        self.extras: dict[str, torch.Tensor] = {}
        self.actions: torch.Tensor | None = None
        self.outputs: tuple[Any, ...] = ()

    # ------------------------------------------------------------------ state
    def _wrap(self):
        """A state object over the static buffers (a fresh object each time: eager code that
        rebinds its attributes never rebinds the buffers)."""
        cls = type(self.engine.state)
        return cls(**self.buffers, extras=dict(self.extras))

    def _load(self, state) -> None:
        """Copy every field of ``state`` that is not already its buffer into the buffer."""
        for name in _field_names(state):
            src, dst = getattr(state, name), self.buffers[name]
            if src is not dst:
                dst.copy_(src)
        if state.extras.keys() != self.extras.keys():
            raise EngineError("the engine state's component fields changed after the CUDA graph "
                              "was recorded")
        for name, src in state.extras.items():
            if src is not self.extras[name]:
                self.extras[name].copy_(src)

    def _body(self) -> tuple[Any, ...]:
        """The recorded work: one step from the buffers, the new state copied back into them."""
        new_state, *outputs = self.engine._step_fn(self._wrap(), self.actions, None)
        self._load(new_state)
        return tuple(outputs)  # obs, reward, terminated, truncated, final_obs

    # ------------------------------------------------------------------ record / replay
    def _record(self) -> None:
        eng = self.engine
        s = eng.state
        self.buffers = {n: getattr(s, n).clone() for n in _field_names(s)}
        self.extras = {k: v.clone() for k, v in s.extras.items()}
        self.actions = torch.zeros(eng.num_envs, dtype=torch.long, device=eng.device)
        self.recorded = True
        if self.emulate:  # recording executes nothing: run once, then restore the buffers
            saved = self._wrap().map(lambda x: x.clone())
            with _no_collection():
                self.outputs = self._body()
            self._load(saved)
            return
        side = torch.cuda.Stream(device=eng.device)
        side.wait_stream(torch.cuda.current_stream(eng.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):  # on copies: the buffers keep the current state
                scratch = self._wrap().map(lambda x: x.clone())
                eng._step_fn(scratch, self.actions, None)
        torch.cuda.current_stream(eng.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with _no_collection(), torch.cuda.graph(self.graph):
            self.outputs = self._body()

    def _replay(self) -> None:
        if self.emulate:
            _copy_into(self.outputs, self._body())
        else:
            self.graph.replay()

    def step(self, actions: torch.Tensor):
        """Replay the step for ``actions`` (B,); returns copies of ``(obs, reward, terminated,
        truncated, final_obs)`` and leaves the new state in ``engine.state``."""
        eng = self.engine
        if not self.recorded:
            self._record()
        self._load(eng.state)
        self.actions.copy_(actions)
        self._replay()
        eng.state = self._wrap()
        return _copy(self.outputs)


@contextmanager
def _no_collection():
    """No garbage collection during a capture. An engine is a reference cycle (its compiled or
    graphed step refers back to it), so a dead engine's CUDA graphs are freed by the collector,
    whenever it runs; freeing a graph while another is being captured invalidates the capture
    ("operation not permitted when stream is capturing"). Dead cycles are collected first."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _copy_into(dst, src) -> None:
    """Write the tensors of ``src`` into the same-shaped tensors of ``dst`` (nested)."""
    if isinstance(dst, torch.Tensor):
        dst.copy_(src)
    elif isinstance(dst, dict):
        for k in dst:
            _copy_into(dst[k], src[k])
    elif isinstance(dst, tuple):
        for a, b in zip(dst, src, strict=True):
            _copy_into(a, b)


def _copy(x):
    """Fresh copies of the tensors in a nested tuple/dict of graph outputs."""
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(_copy(v) for v in x)
    return x
