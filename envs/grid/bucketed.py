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

from collections.abc import Sequence
from typing import Literal

import torch

from autoworld.envs.grid.engine import GridEngine, pad_image
from autoworld.envs.grid.level import LevelBank
from autoworld.envs.grid.spec import GridWorldSpec
from autoworld.errors import EngineError

Bucketing = Literal["auto", "components", "none"]
ObsSpec = dict[str, tuple[tuple[int, ...], torch.dtype, float, float]]
BUCKETING_MODES = ("auto", "components", "none")


def component_signature(spec: GridWorldSpec) -> tuple[str, ...]:
    """The sorted names of a world's components: worlds with equal signatures share a bucket."""
    names = [c.kind for factor in (spec.transition, spec.observation, spec.reward)
             for c in factor]
    return tuple(sorted(set(names)))


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
    bucketing: Bucketing = "auto",
) -> GridEngine | BucketedGridEngine:
    """An engine for any batch of grid worlds: one program, or one per component set.

    Takes :class:`GridEngine`'s arguments plus ``bucketing``:

    - ``"auto"`` (default): bucket by component set when the batch holds more than one set,
      else a plain :class:`GridEngine`;
    - ``"components"``: always a :class:`BucketedGridEngine` (even with one bucket);
    - ``"none"``: one program for the whole batch (neutral parameters for absent components).
    """
    if bucketing not in BUCKETING_MODES:
        raise EngineError(f"bucketing must be one of {BUCKETING_MODES} (got {bucketing!r})")
    world_list = [worlds] if isinstance(worlds, GridWorldSpec) else list(worlds)
    kw = dict(num_envs=num_envs, device=device, seed=seed, world_ids=world_ids, banks=banks,
              split=split, final_obs=final_obs, compile=compile)
    if bucketing == "none":
        return GridEngine(world_list, **kw)
    if bucketing == "auto":
        ids = range(len(world_list)) if world_ids is None else set(world_ids)
        used = {component_signature(world_list[w]) for w in ids if 0 <= w < len(world_list)}
        if len(used) <= 1:
            return GridEngine(world_list, **kw)
    return BucketedGridEngine(world_list, **kw)


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

        layout = batch_layout(self.worlds, world_ids)
        # group the worlds in use by component set, in order of first appearance
        groups: dict[tuple[str, ...], list[int]] = {}
        for w in dict.fromkeys(world_ids):
            groups.setdefault(component_signature(self.worlds[w]), []).append(w)
        self.buckets: list[GridEngine] = []
        self.bucket_envs: list[torch.Tensor] = []  # global env indices of each bucket
        self._bucket_of = [0] * B
        self._local_of = [0] * B
        for b, members in enumerate(groups.values()):
            local_world = {w: j for j, w in enumerate(members)}
            envs = [i for i, w in enumerate(world_ids) if w in local_world]
            for j, i in enumerate(envs):
                self._bucket_of[i], self._local_of[i] = b, j
            self.buckets.append(GridEngine(
                [self.worlds[w] for w in members], num_envs=len(envs), device=self.device,
                seed=seed, world_ids=[local_world[world_ids[i]] for i in envs],
                banks=None if banks is None else [banks[w] for w in members], split=split,
                final_obs=final_obs, compile=compile, env_index=envs, layout=layout,
            ))
            self.bucket_envs.append(torch.tensor(envs, dtype=torch.long, device=self.device))
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
        return merged

    def observation_spec(self) -> ObsSpec:
        """Per observation key: (shape without the batch dim, dtype, low, high), the union over
        buckets (shapes padded to the largest)."""
        return dict(self._spec)

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self._spec["image"][0])  # type: ignore[return-value]

    def _fit(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """One bucket's observation ``key`` padded to the merged shape."""
        shape = self._spec[key][0]
        if tuple(x.shape[1:]) == shape:
            return x
        if key == "image":
            return pad_image(x, *shape)
        out = torch.zeros((x.shape[0], *shape), dtype=x.dtype, device=x.device)
        out[(slice(None), *(slice(0, n) for n in x.shape[1:]))] = x
        return out

    def _merge_obs(self, parts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        out = {}
        for key, (shape, dtype, _, _) in self._spec.items():
            rows = []
            for eng_obs, envs in zip(parts, self.bucket_envs, strict=True):
                if key in eng_obs:
                    rows.append(self._fit(key, eng_obs[key]))
                else:
                    rows.append(torch.zeros((len(envs), *shape), dtype=dtype,
                                            device=self.device))
            out[key] = self._cat(rows)
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
        outs = [eng.step(a) for eng, a in zip(self.buckets, self._split(actions), strict=True)]
        obs = self._merge_obs([o[0] for o in outs])
        reward = self._cat([o[1] for o in outs])
        terminated = self._cat([o[2] for o in outs])
        truncated = self._cat([o[3] for o in outs])
        info = {}
        if self.final_obs_enabled:
            info["final_obs"] = self._merge_obs([o[4]["final_obs"] for o in outs])
        return obs, reward, terminated, truncated, info

    def level_index(self) -> torch.Tensor:
        """(B,) index of each env's current level within its world's bank."""
        return self._cat([eng.level_index() for eng in self.buckets])

    def set_env_keys(self, keys: torch.Tensor) -> None:
        """Give every env the random key ``keys[i]`` (B,); as :meth:`GridEngine.set_env_keys`."""
        keys = torch.as_tensor(keys, dtype=torch.long, device=self.device)
        if keys.shape != (self.num_envs,):
            raise EngineError(f"keys must have shape ({self.num_envs},) (got {tuple(keys.shape)})")
        for eng, envs in zip(self.buckets, self.bucket_envs, strict=True):
            eng.set_env_keys(keys.index_select(0, envs))
