"""Mixed batches by bucketing: worlds that share a component set run as one program each.

One :class:`~autoworld.envs.grid.engine.GridEngine` can step any mix of worlds: a component that
some worlds lack runs on every env with neutral parameters. That is exact, but a batch of 12
worlds with different components then pays for the union of all their components on every env
(measured: 18% of the homogeneous speed on 2 CPU cores). :class:`BucketedGridEngine` instead
groups the worlds by component set: each group (a *bucket*) is one engine stepping only its own
envs, and the buckets' outputs are merged into one batch in the caller's env order. Worlds that
differ only in parameters, sizes or levels still share a bucket (neutral parameters cost nothing
there).

Bucketing changes no trajectory: every env keeps its random key (derived from its index in the
whole batch), its world and its level bank, so a bucketed batch and a single-program batch give
identical rewards, terminations and observations (``tests/grid/test_bucketed.py``).

Example:
    >>> from autoworld.envs.catalogue import load_world
    >>> worlds = [load_world("DoorKey-8x8"), load_world("IceRink-9x9")]
    >>> eng = make_engine(worlds, num_envs=4, seed=0)
    >>> type(eng).__name__, eng.num_buckets
    ('BucketedGridEngine', 2)
    >>> obs = eng.reset()
    >>> obs, reward, terminated, truncated, info = eng.step(torch.zeros(4, dtype=torch.long))
    >>> reward.shape
    torch.Size([4])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

import torch

from autoworld.envs.grid.engine import GridEngine
from autoworld.envs.grid.graphs import env_default as graphs_env_default
from autoworld.envs.grid.graphs import env_flag
from autoworld.envs.grid.level import LevelBank
from autoworld.envs.grid.spec import GridWorldSpec
from autoworld.envs.grid.symbols import CELL
from autoworld.errors import EngineError

Bucketing = Literal["auto", "components", "none"]
ObsSpec = dict[str, tuple[tuple[int, ...], torch.dtype, float, float]]
BUCKETING_MODES = ("auto", "components", "none")


STREAMS_ENV_VAR = "AUTOWORLD_CUDA_STREAMS"


def component_signature(spec: GridWorldSpec) -> tuple[str, ...]:
    """The sorted names of a world's components: worlds with equal signatures share a bucket."""
    names = [c.kind for factor in (spec.transition, spec.observation, spec.reward)
             for c in factor]
    return tuple(sorted(set(names)))


# Cost model of one program stepping n envs with component set S, in units of one env's work
# per component: (BASE_COMPONENTS + |S|) * (overhead_envs + n). ``overhead_envs`` is the fixed
# per-step cost of a program (op dispatch, kernel launches) in env-equivalents; measured on 2 CPU
# cores, a program's step at 256 envs costs about half its step at 4,096 envs (docs/benchmarks.md).
#
# On CUDA with recorded graphs and a stream per bucket (the default for graphed engines, see
# make_engine), a small program's fixed cost (a chain of ~300 small kernels, ~0.25 ms whatever
# the batch) overlaps with the other programs' instead of adding to it, so the model charges much
# less per program ("cuda_streams"). Measured on one H100 with the 12-world mix of
# docs/benchmarks.md, all graphed on streams: at 1,048,576 envs 12 programs ran 131M steps/s
# (twice) against 103M for the 4 of the eager-tuned plan and 126M for 11; at 65,536 envs 5
# programs ran 31.5M against 26.6M for one program without streams. 7,500 gives those plans (12
# and 5) and keeps a POET step (20 worlds x 512 envs) in one program.
BASE_COMPONENTS = 4  # the engine's own work per step (moves, time, reset, view merge)
OVERHEAD_ENVS = {"cpu": 1_000, "cuda": 200_000, "cuda_streams": 7_500}


def plan_buckets(worlds: Sequence[GridWorldSpec], world_ids: Sequence[int],
                 overhead_envs: float | None = None, device: str | torch.device = "cpu",
                 merge: bool = True, concurrent: bool = False) -> list[list[int]]:
    """Group the worlds in use into buckets (lists of world indices), one program each.

    Start from one bucket per component set; then, while merging two buckets into one program
    (running their union of components on both sets of envs) is cheaper under the cost model
    than running them apart, merge the pair that saves most. Small batches thus fall back to one
    program (its fixed cost dominates), large ones keep a program per component set.
    ``concurrent``: the programs will run side by side on CUDA streams (a smaller fixed cost).
    """
    counts: dict[int, int] = {}
    for w in world_ids:
        counts[w] = counts.get(w, 0) + 1
    by_sig: dict[tuple[str, ...], list[int]] = {}
    for w in counts:
        by_sig.setdefault(component_signature(worlds[w]), []).append(w)
    groups = [(set(sig), sum(counts[w] for w in ws), ws) for sig, ws in by_sig.items()]
    if not merge:
        return [g[2] for g in groups]
    kind = torch.device(device).type
    if kind == "cuda" and concurrent:
        kind = "cuda_streams"
    k = overhead_envs if overhead_envs is not None else OVERHEAD_ENVS.get(
        kind, OVERHEAD_ENVS["cuda"])

    def cost(comps: set[str], n: int) -> float:
        return (BASE_COMPONENTS + len(comps)) * (k + n)

    while len(groups) > 1:
        best, pair = 0.0, None
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                (si, ni, _), (sj, nj, _) = groups[i], groups[j]
                saving = cost(si, ni) + cost(sj, nj) - cost(si | sj, ni + nj)
                if saving > best:
                    best, pair = saving, (i, j)
        if pair is None:
            break
        i, j = pair
        (si, ni, wi), (sj, nj, wj) = groups[i], groups[j]
        groups[i] = (si | sj, ni + nj, wi + wj)
        del groups[j]
    return [g[2] for g in groups]


def default_concurrent(device: str | torch.device, cuda_graph: bool | None) -> bool:
    """Whether a bucketed engine built with ``concurrent=None`` steps its buckets on streams:
    on CUDA, when ``AUTOWORLD_CUDA_STREAMS`` says so (1 on, 0 off), else when its programs
    replay recorded graphs (streams measured faster there; eager streams were not)."""
    if torch.device(device).type != "cuda":
        return False
    flag = os.environ.get(STREAMS_ENV_VAR, "").strip()
    if flag:
        return env_flag(STREAMS_ENV_VAR)
    return bool(graphs_env_default() if cuda_graph is None else cuda_graph)


def make_engine(
    worlds: GridWorldSpec | Sequence[GridWorldSpec],
    num_envs: int = 1,
    device: str | torch.device = "cpu",
    seed: int = 0,
    world_ids: Sequence[int] | None = None,
    banks: Sequence[LevelBank] | None = None,
    split: str = "train",
    final_obs: bool = True,
    compile: bool = False,
    cuda_graph: bool | None = None,
    bucketing: Bucketing = "auto",
    overhead_envs: float | None = None,
    concurrent: bool | None = None,
) -> GridEngine | BucketedGridEngine:
    """An engine for any batch of grid worlds: one program, or several (buckets).

    Takes :class:`GridEngine`'s arguments plus ``bucketing``:

    - ``"auto"`` (default): hybrid; one bucket per component set, then buckets merged while the
      cost model says one program is cheaper (:func:`plan_buckets`; ``overhead_envs`` overrides
      the device's fixed per-program cost); a plain :class:`GridEngine` when one bucket remains;
    - ``"components"``: one bucket per component set, never merged;
    - ``"none"``: one program for the whole batch (neutral parameters for absent components).

    ``concurrent=True`` (CUDA only) steps the buckets on their own CUDA streams, so that small
    programs run side by side on the GPU (see :class:`BucketedGridEngine`); ``None`` (default):
    on for CUDA engines that replay recorded graphs (``cuda_graph``, or ``AUTOWORLD_CUDA_GRAPH=1``
    when it is None) or when the environment sets ``AUTOWORLD_CUDA_STREAMS=1``; off otherwise
    and when it sets ``AUTOWORLD_CUDA_STREAMS=0``. With streams the ``auto`` plan charges less
    per program (``OVERHEAD_ENVS["cuda_streams"]``) and keeps more buckets apart.
    """
    if bucketing not in BUCKETING_MODES:
        raise EngineError(f"bucketing must be one of {BUCKETING_MODES} (got {bucketing!r})")
    world_list = [worlds] if isinstance(worlds, GridWorldSpec) else list(worlds)
    if concurrent is None:
        concurrent = default_concurrent(device, cuda_graph)
    kw = dict(num_envs=num_envs, device=device, seed=seed, world_ids=world_ids, banks=banks,
              split=split, final_obs=final_obs, compile=compile, cuda_graph=cuda_graph)
    if bucketing == "none":
        return GridEngine(world_list, **kw)
    if bucketing == "auto":
        ids = [i % len(world_list) for i in range(num_envs)] if world_ids is None else world_ids
        if all(0 <= w < len(world_list) for w in ids):  # else the engine names the error
            plan = plan_buckets(world_list, ids, overhead_envs, device, concurrent=concurrent)
            if len(plan) <= 1:
                return GridEngine(world_list, **kw)
            return BucketedGridEngine(world_list, **kw, plan=plan, concurrent=concurrent)
    return BucketedGridEngine(world_list, **kw, concurrent=concurrent)


def batch_layout(worlds: Sequence[GridWorldSpec], world_ids: Sequence[int]) -> dict:
    """The observation layout a single program gives a batch of these worlds: the image shape
    (the largest view: the full frame if any world sees the full grid, the largest egocentric
    window), the egocentric window side and the pixel tile (the largest among the envs')."""
    used = [worlds[w] for w in dict.fromkeys(world_ids)]
    shapes = [(0, 0)]
    if any(w.component("full_grid") is not None for w in worlds):
        shapes.append((max(w.height for w in worlds), max(w.width for w in worlds)))
    sizes = [w.component("egocentric").size for w in used if w.component("egocentric")]
    if sizes:
        shapes.append((max(sizes), max(sizes)))
    tiles = [w.component("rgb").tile for w in used if w.component("rgb")]
    return {"image_shape": (max(s[0] for s in shapes), max(s[1] for s in shapes)),
            "egocentric_size": max(sizes, default=0), "rgb_tile": max(tiles, default=0)}


class BucketedGridEngine:
    """A batch of grid worlds stepped as one engine per component set (see the module doc).

    It offers the batched interface of :class:`GridEngine` that rollouts need (``reset``,
    ``step``, ``observation_spec``, ``image_shape``, ``level_index``, ``worlds``,
    ``world_ids``, ``num_envs``, ``device``); the per-bucket engines are in ``buckets`` and
    ``locate(i)`` finds env i in them (for rendering and inspection).

    Observations are merged into the batch layout of a single program: images padded with
    ``PAD`` to the largest view, keys that only some buckets emit zero-filled elsewhere.
    """

    def __init__(
        self,
        worlds: GridWorldSpec | Sequence[GridWorldSpec],
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int = 0,
        world_ids: Sequence[int] | None = None,
        banks: Sequence[LevelBank] | None = None,
        split: str = "train",
        final_obs: bool = True,
        compile: bool = False,
        cuda_graph: bool | None = None,
        plan: Sequence[Sequence[int]] | None = None,
        concurrent: bool = False,
    ) -> None:
        self.worlds = [worlds] if isinstance(worlds, GridWorldSpec) else list(worlds)
        if not self.worlds:
            raise EngineError("a bucketed engine needs at least one world spec")
        if num_envs < 1:
            raise EngineError(f"num_envs must be >= 1 (got {num_envs})")
        B = self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.final_obs_enabled = final_obs
        if world_ids is None:
            world_ids = [i % len(self.worlds) for i in range(B)]
        world_ids = [int(w) for w in world_ids]
        if len(world_ids) != B or not all(0 <= w < len(self.worlds) for w in world_ids):
            raise EngineError(f"world_ids must be {B} indices into the {len(self.worlds)} worlds")
        if banks is not None and len(banks) != len(self.worlds):
            raise EngineError("give one level bank per world")
        self.world_ids_list = world_ids
        self.world_ids = torch.tensor(world_ids, dtype=torch.long, device=self.device)
        self.seed = seed
        if concurrent and self.device.type != "cuda":
            raise EngineError(f"concurrent=True steps buckets on CUDA streams; the engine is on "
                              f"{self.device}: leave it off there")

        self.layout = layout = batch_layout(self.worlds, world_ids)
        # buckets draw their views at their own size (filters cost per image cell); the merge
        # pads them to the batch's image, as one program's view stage would
        bucket_layout = {k: v for k, v in layout.items() if k != "image_shape"}
        # buckets: given, or one per component set of the worlds in use
        if plan is None:
            plan = plan_buckets(self.worlds, world_ids, merge=False)
        planned = sorted(w for ws in plan for w in ws)
        if planned != sorted(set(world_ids)):
            raise EngineError("plan must list every world in use exactly once")
        self.plan = [list(ws) for ws in plan]
        self.buckets: list[GridEngine] = []
        self.bucket_envs: list[torch.Tensor] = []  # global env indices of each bucket
        self._bucket_of = [0] * B
        self._local_of = [0] * B
        for b, members in enumerate(self.plan):
            local_world = {w: j for j, w in enumerate(members)}
            envs = [i for i, w in enumerate(world_ids) if w in local_world]
            for j, i in enumerate(envs):
                self._bucket_of[i], self._local_of[i] = b, j
            self.buckets.append(GridEngine(
                [self.worlds[w] for w in members], num_envs=len(envs), device=self.device,
                seed=seed, world_ids=[local_world[world_ids[i]] for i in envs],
                banks=None if banks is None else [banks[w] for w in members], split=split,
                final_obs=final_obs, compile=compile, cuda_graph=cuda_graph, env_index=envs,
                layout=bucket_layout,
            ))
            self.bucket_envs.append(torch.tensor(envs, dtype=torch.long, device=self.device))
        # one CUDA stream per bucket: at ~100k envs a program does not fill a GPU, so stepping
        # the buckets one after another leaves it mostly idle (docs/benchmarks.md, "CUDA graphs
        # and compiled buckets")
        self.streams = ([torch.cuda.Stream(device=self.device) for _ in self.buckets]
                        if concurrent else None)
        order = torch.cat(self.bucket_envs)
        self._identity = bool(torch.equal(order, torch.arange(B, device=self.device)))
        self._inverse = torch.empty_like(order)
        self._inverse[order] = torch.arange(B, device=self.device)
        # contiguous slices of the batch when the buckets' envs are contiguous ranges
        self._slices = self._contiguous_slices() if self._identity else None

        self._spec = self._merged_observation_spec()
        self.height = self._cat([e.height for e in self.buckets])
        self.width = self._cat([e.width for e in self.buckets])
        self.max_steps = self._cat([e.max_steps for e in self.buckets])

    # ==================================================================== layout
    @property
    def num_buckets(self) -> int:
        return len(self.buckets)

    def locate(self, env_index: int) -> tuple[GridEngine, int]:
        """The bucket engine that steps env ``env_index`` and its index there."""
        if not 0 <= env_index < self.num_envs:
            raise EngineError(f"env_index {env_index} is outside the batch of {self.num_envs} envs")
        return self.buckets[self._bucket_of[env_index]], self._local_of[env_index]

    def _contiguous_slices(self) -> list[slice]:
        out, start = [], 0
        for envs in self.bucket_envs:
            out.append(slice(start, start + len(envs)))
            start += len(envs)
        return out

    def _split(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-bucket rows of a (B, ...) tensor."""
        if self._slices is not None:
            return [x[s] for s in self._slices]
        return [x.index_select(0, envs) for envs in self.bucket_envs]

    def _cat(self, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        """Bucket-ordered rows back in the caller's env order."""
        out = parts[0] if len(parts) == 1 else torch.cat(list(parts))
        return out if self._identity else out.index_select(0, self._inverse)

    # ==================================================================== observations
    def _merged_observation_spec(self) -> ObsSpec:
        merged: ObsSpec = {}
        for eng in self.buckets:
            for key, (shape, dtype, low, high) in eng.observation_spec().items():
                shape = tuple(shape)
                if key not in merged:
                    merged[key] = (shape, dtype, low, high)
                    continue
                old_shape, old_dtype, old_low, old_high = merged[key]
                if old_dtype != dtype or len(old_shape) != len(shape):
                    raise EngineError(
                        f"observation {key!r} has dtype/rank {old_dtype}/{len(old_shape)} in one "
                        f"bucket and {dtype}/{len(shape)} in another; these worlds cannot share "
                        "a batch (use bucketing='none' or separate batches)")
                merged[key] = (tuple(max(a, b) for a, b in zip(old_shape, shape, strict=True)),
                               dtype, min(old_low, low), max(old_high, high))
        # image-shaped keys take the batch's image shape (a world outside the buckets, or a
        # full grid larger than any bucket's frame, still sets it, as in one program)
        R, C = self.layout["image_shape"]
        R, C = max(R, merged["image"][0][0]), max(C, merged["image"][0][1])
        for key in ("image", "text"):
            if key in merged:
                merged[key] = ((R, C), *merged[key][1:])
        if "rgb" in merged:
            t = merged["rgb"][0][0] // max(1, max(e.image_shape[0] for e in self.buckets
                                                  if "rgb" in e.observation_spec()))
            merged["rgb"] = ((R * t, C * t, 3), *merged["rgb"][1:])
        return merged

    def observation_spec(self) -> ObsSpec:
        """Per observation key: (shape without the batch dim, dtype, low, high), the union over
        buckets (shapes padded to the largest)."""
        return dict(self._spec)

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self._spec["image"][0])  # type: ignore[return-value]

    def _merge_obs(self, parts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The buckets' observations in the caller's env order: smaller images padded
        top-left (PAD cells, spaces in text, black pixels), keys a bucket lacks zero."""
        out = {}
        for key, (shape, dtype, _, _) in self._spec.items():
            fill = int(CELL.PAD) if key == "image" else ord(" ") if key == "text" else 0
            rows = []
            for part in parts:
                x = part.get(key)
                if x is not None and tuple(x.shape[1:]) != shape:
                    pad = [p for d in reversed(range(1, x.dim()))
                           for p in (0, shape[d - 1] - x.shape[d])]
                    x = torch.nn.functional.pad(x, pad, value=fill)
                rows.append(x)
            if all(x is not None for x in rows):
                out[key] = self._cat(rows)
                continue
            # a key only some buckets emit: zeros, with those buckets' rows written in
            buf = torch.zeros((self.num_envs, *shape), dtype=dtype, device=self.device)
            for b, x in enumerate(rows):
                if x is not None:
                    if self._slices is not None:
                        buf[self._slices[b]] = x
                    else:
                        buf.index_copy_(0, self.bucket_envs[b], x)
            out[key] = buf
        return out

    # ==================================================================== reset / step
    def reset(self, seed: int | None = None, level_ids: torch.Tensor | None = None,
              mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Reset the envs in ``mask`` (all by default); as :meth:`GridEngine.reset`."""
        if seed is not None:
            self.seed = seed
        lv = None if level_ids is None else self._split(
            torch.as_tensor(level_ids, dtype=torch.long, device=self.device))
        mk = None if mask is None else self._split(torch.as_tensor(mask, device=self.device))
        parts = [eng.reset(seed=seed, level_ids=None if lv is None else lv[b],
                           mask=None if mk is None else mk[b])
                 for b, eng in enumerate(self.buckets)]
        return self._merge_obs(parts)

    def step(self, actions: torch.Tensor, outcomes: dict[str, torch.Tensor] | None = None):
        """Advance every env one step; as :meth:`GridEngine.step` (same-step autoreset, the
        true final observation in ``info["final_obs"]``)."""
        if outcomes is not None:
            raise EngineError("forced outcomes need a single-program engine (bucketing='none')")
        actions = torch.as_tensor(actions, device=self.device).long()
        if self.streams is not None:
            outs = self._step_concurrently(self._split(actions))
        else:
            outs = [eng.step(a) for eng, a in zip(self.buckets, self._split(actions),
                                                  strict=True)]
        obs = self._merge_obs([o[0] for o in outs])
        reward = self._cat([o[1] for o in outs])
        terminated = self._cat([o[2] for o in outs])
        truncated = self._cat([o[3] for o in outs])
        info = {}
        if self.final_obs_enabled:
            info["final_obs"] = self._merge_obs([o[4]["final_obs"] for o in outs])
        return obs, reward, terminated, truncated, info

    def _step_concurrently(self, actions: list[torch.Tensor]) -> list[tuple]:
        """Each bucket's step on its own stream, the caller's stream waiting for all of them.

        Every stream first waits for the caller's (state replaced by ``reset``, the actions), and
        tensors that cross streams are marked with ``record_stream`` so that the caching
        allocator does not hand their memory out while the other stream still reads it (the
        PyTorch CUDA semantics notes)."""
        main = torch.cuda.current_stream(self.device)
        outs = []
        for eng, a, stream in zip(self.buckets, actions, self.streams, strict=True):
            stream.wait_stream(main)
            with torch.cuda.stream(stream):
                _record_on(a, stream)
                outs.append(eng.step(a))
        for stream in self.streams:
            main.wait_stream(stream)
        for out in outs:
            _record_on(out, main)
        for eng in self.buckets:  # the state is read by eager code on the caller's stream too
            _record_on(eng.state.__dict__, main)
        return outs

    def level_index(self) -> torch.Tensor:
        """(B,) index of each env's current level within its world's bank."""
        return self._cat([eng.level_index() for eng in self.buckets])

    @property
    def bank_count(self) -> torch.Tensor:
        """(B,) number of levels in each env's world bank."""
        return self._cat([eng.bank_count for eng in self.buckets])

    def set_env_keys(self, keys: torch.Tensor) -> None:
        """Give every env the random key ``keys[i]`` (B,); as :meth:`GridEngine.set_env_keys`."""
        keys = torch.as_tensor(keys, dtype=torch.long, device=self.device)
        if keys.shape != (self.num_envs,):
            raise EngineError(f"keys must have shape ({self.num_envs},) (got {tuple(keys.shape)})")
        for eng, envs in zip(self.buckets, self.bucket_envs, strict=True):
            eng.set_env_keys(keys.index_select(0, envs))


def _record_on(x, stream) -> None:
    """``record_stream(stream)`` on every tensor of a nested tuple/list/dict."""
    if isinstance(x, torch.Tensor):
        if x.device.type == "cuda":
            x.record_stream(stream)
    elif isinstance(x, dict):
        for v in x.values():
            _record_on(v, stream)
    elif isinstance(x, (tuple, list)):
        for v in x:
            _record_on(v, stream)
