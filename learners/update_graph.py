"""A learner's minibatch update replayed as a recorded CUDA graph
(``AUTOWORLD_CUDA_GRAPH_UPDATES=1``): PPO's (``learners/ppo.py``) and behaviour cloning's
(``learners/bc.py``).

One PPO minibatch update (the policy's forward, the clipped loss, backward, the gradient-norm
clip and the fused Adam step) is ~200 small tensor operations (187 with the MLP trunk, 208 with
the conv trunk of the leaderboard's methods, counted on DoorKey-8x8 at 1,024 envs x 32 steps);
PPO makes 64 of them per rollout, ~1,900 per million env steps, against ~90 operations per
rollout step besides the engine's (143 eager, one launch replayed as a graph). Behaviour cloning
makes up to 4,000 updates per run, 87% of a BC cell's time on CPU. On a GPU such small kernels
cost their launch more than their arithmetic, and the leaderboard's workers share one GPU. A
CUDA graph records the update once and replays it with one launch (the whole-network capture of
the PyTorch CUDA-graph notes: ``optimizer.zero_grad(set_to_none=True)`` before recording, Adam
with ``capturable=True``, a warm-up of real updates on a side stream first).

- The minibatch is copied into static input buffers before each replay; the update's scalars
  (losses and the like) come back as a copy.
- What the recording bakes in is its key: the minibatch size, the update's constants (PPO's
  loss coefficients), each parameter group's learning rate and the identity of every parameter
  and optimizer-state tensor. An update with another key records again, so a learner whose
  learning rate changes (PBT's explore) or whose optimizer state is replaced (PBT's exploit, a
  resume) never replays a stale graph. A learning rate annealed every iteration would record
  every iteration, so ``PPO`` records only with a constant rate (the grid's default).
- Each minibatch size runs a few real updates eagerly on a side stream before its first
  recording (lazy initialization, e.g. cuDNN's plans for a new shape, stays out of it).
- A replay runs the kernels of the eager update on the same inputs.

``emulate=True`` (tests, any device) stands in for the recording: every update runs eagerly on
the static buffers and its scalars are copied into the tensor a recording would return, so CPU
tests check the buffer handling, the keys and the re-recording.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from autoworld.envs.grid.graphs import _no_collection, env_flag

ENV_VAR = "AUTOWORLD_CUDA_GRAPH_UPDATES"
WARMUP_UPDATES = 3  # real updates run eagerly on a side stream before the first recording


def env_default() -> bool:
    """True when the environment asks learners on CUDA (PPO, behaviour cloning) to replay their
    minibatch update as a recorded graph (``AUTOWORLD_CUDA_GRAPH_UPDATES=1``)."""
    return env_flag(ENV_VAR)


def wanted(device: torch.device, requested: bool | None) -> bool:
    """Whether a learner on ``device`` records its update: as ``requested``, or when None as the
    environment asks, on CUDA only."""
    return requested if requested is not None else device.type == "cuda" and env_default()


# body(obs, samples, config, zero_grad) -> scalars (a 1-D tensor, detached): one update of the
# learner's policy with its optimizer; zero_grad=False leaves the gradients to the caller (a
# recording sets them to None beforehand, so that the recorded backward writes them instead of
# adding to them)
Body = Callable[[dict[str, torch.Tensor], list[torch.Tensor], Any, bool], torch.Tensor]


class _Recording:
    """One recorded update for one minibatch size: its key, graph and static tensors."""

    def __init__(self, obs: dict[str, torch.Tensor], samples: list[torch.Tensor]) -> None:
        self.obs = {k: torch.empty_like(v) for k, v in obs.items()}
        self.samples = [torch.empty_like(x) for x in samples]
        self.key: tuple | None = None
        self.graph: Any = None
        self.scalars: torch.Tensor | None = None

    def fill(self, obs: dict[str, torch.Tensor], samples: list[torch.Tensor]) -> None:
        for k, v in obs.items():
            self.obs[k].copy_(v)
        for dst, src in zip(self.samples, samples, strict=True):
            dst.copy_(src)


class GraphedUpdate:
    """A learner's minibatch update (``body``) as a recorded CUDA graph (see the module doc):
    one recording per minibatch size (an epoch's minibatches differ by at most one sample).
    ``consts(config)`` are the constants of ``config`` that the body bakes in."""

    def __init__(self, policy: nn.Module, optimizer: torch.optim.Optimizer, body: Body,
                 consts: Callable[[Any], tuple] = lambda config: (),
                 emulate: bool = False) -> None:
        self.policy, self.optimizer = policy, optimizer
        self.body, self.consts = body, consts
        self.params = [p for p in policy.parameters() if p.requires_grad]
        self.emulate = emulate
        self.device = self.params[0].device
        if not emulate and self.device.type != "cuda":
            raise ValueError(f"a graphed update needs a CUDA device (the policy is on "
                             f"{self.device}); leave {ENV_VAR} off on CPU")
        if not all(g.get("fused") for g in optimizer.param_groups):
            # only fused Adam keeps its step count on the device from the start, so that its
            # ``capturable`` may be turned on once its state exists
            raise ValueError("a graphed update needs torch.optim.Adam(..., fused=True)")
        self.warm: dict[int, int] = {}  # eager warm-up updates run, per minibatch size
        self.recordings: dict[int, _Recording] = {}
        self.records = 0  # how many times an update was recorded (tests, diagnostics)

    def _key(self, config) -> tuple:
        """What a recording bakes in (the minibatch size aside)."""
        opt = self.optimizer
        tensors = [p.data_ptr() for p in self.params]
        for p in self.params:
            tensors += [t.data_ptr() for t in opt.state.get(p, {}).values()
                        if isinstance(t, torch.Tensor)]
        lrs = tuple(float(g["lr"]) for g in opt.param_groups)
        return self.consts(config), lrs, tuple(tensors), self.policy.training

    def _record(self, rec: _Recording, config) -> None:
        for group in self.optimizer.param_groups:
            group["capturable"] = True  # Adam keeps its step count on the device
        self.optimizer.zero_grad(set_to_none=True)
        rec.graph = torch.cuda.CUDAGraph()
        with _no_collection(), torch.cuda.graph(rec.graph):
            rec.scalars = self.body(rec.obs, rec.samples, config, False)

    def _warm_up(self, n: int, obs: dict[str, torch.Tensor], samples: list[torch.Tensor],
                 config) -> torch.Tensor:
        """A real update, eager, on a side stream (lazy initialization kept out of the
        recording: the optimizer's state, the libraries' handles)."""
        main = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            out = self.body(obs, samples, config, True)
        main.wait_stream(side)
        out.record_stream(main)
        self.warm[n] = self.warm.get(n, 0) + 1
        return out

    def __call__(self, obs: dict[str, torch.Tensor], samples: list[torch.Tensor],
                 config: Any = None) -> torch.Tensor:
        """Run one update on this minibatch; returns a copy of its scalars."""
        n = int(samples[0].shape[0])
        if not self.emulate and self.warm.get(n, 0) < WARMUP_UPDATES:  # each size its own
            return self._warm_up(n, obs, samples, config)
        rec = self.recordings.get(n)
        if rec is None:
            rec = self.recordings[n] = _Recording(obs, samples)
        key = self._key(config)
        if key != rec.key:
            if not self.emulate:
                self._record(rec, config)
            rec.key = key
            self.records += 1
        rec.fill(obs, samples)
        if self.emulate:  # what a replay does: the update on the static buffers
            out = self.body(rec.obs, rec.samples, config, True)
            if rec.scalars is None:
                rec.scalars = torch.empty_like(out)
            rec.scalars.copy_(out)
            rec.key = self._key(config)  # a first update creates the optimizer's state
        else:
            rec.graph.replay()
        return rec.scalars.clone()
