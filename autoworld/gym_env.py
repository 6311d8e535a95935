"""Gymnasium adapters of the batched grid engine.

``GridEnv`` is a single ``gymnasium.Env`` (numpy observations, passes
``gymnasium.utils.env_checker.check_env``); ``GridVectorEnv`` is the native batched
``gymnasium.vector.VectorEnv`` (torch tensors on the engine's device, or numpy), with same-step
autoreset. ``make_env`` and ``make_vector_env`` are the entry points that
``autoworld.registration`` registers for every catalogue world and for ``autoworld/World-v0``.

Example:
    >>> import gymnasium, autoworld
    >>> env = gymnasium.make("autoworld/DoorKey-8x8-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs["image"].shape
    (7, 7)
    >>> envs = gymnasium.make_vec("autoworld/DoorKey-8x8-v0", num_envs=4,
    ...                           vectorization_mode="vector_entry_point")
    >>> obs, info = envs.reset(seed=0)
    >>> tuple(obs["image"].shape)
    (4, 7, 7)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from autoworld.envs.grid.bucketed import BucketedGridEngine, make_engine
from autoworld.envs.grid.engine import NUM_ACTIONS, GridEngine, GridState
from autoworld.envs.grid.render import render_ascii, render_rgb
from autoworld.envs.grid.spec import GridWorldSpec
from autoworld.errors import EngineError, SpecError

RENDER_MODES = ("rgb_array", "ansi")
RENDER_FPS = 8
SEED_BOUND = 2**31  # seeds drawn from entropy when none is given lie in [0, SEED_BOUND)

WorldLike = str | os.PathLike | GridWorldSpec


# ======================================================================== worlds and spaces
def resolve_world(world: WorldLike | None = None, spec: WorldLike | None = None) -> GridWorldSpec:
    """The world spec named by a catalogue ``world`` or a ``spec`` file (exactly one of them).

    Args:
        world: a catalogue name (``autoworld list``), a spec file path, or a spec object.
        spec: a path to any spec file (.yaml/.yml/.json), or a spec object.

    Example:
        >>> resolve_world("DoorKey-8x8").max_steps
        640
    """
    if (world is None) == (spec is None):
        raise SpecError("give exactly one of world=NAME (see `autoworld list`) or spec=PATH",
                        field="world" if world is not None else "spec")
    source = world if world is not None else spec
    if isinstance(source, GridWorldSpec):
        return source
    if world is not None:
        from autoworld.envs.catalogue import load_world

        return load_world(os.fspath(world))
    from autoworld.spec import load_spec

    return load_spec(source)  # type: ignore[arg-type]


def _resolve_worlds(world: WorldLike | None, spec: WorldLike | None,
                    worlds: Sequence[WorldLike] | None) -> list[GridWorldSpec]:
    if worlds is None:
        return [resolve_world(world, spec)]
    if world is not None or spec is not None:
        raise SpecError("give either world=/spec= or worlds=[...], not both (for a mixed batch "
                        "use autoworld/World-v0 with worlds=[...])", field="worlds")
    if isinstance(worlds, str | os.PathLike | GridWorldSpec) or len(worlds) == 0:
        raise SpecError("worlds must be a non-empty list of names, paths or specs",
                        field="worlds")
    return [w if isinstance(w, GridWorldSpec) else resolve_world(world=w) for w in worlds]


def _build_engine(worlds: list[GridWorldSpec], num_envs: int, *, device: str | torch.device,
                  seed: int, world_ids: Sequence[int] | None, split: str,
                  max_episode_steps: int | None, compile: bool = False,
                  bucketing: str = "auto", cuda_graph: bool | None = None
                  ) -> GridEngine | BucketedGridEngine:
    banks = None
    if max_episode_steps is not None and any(w.max_steps != max_episode_steps for w in worlds):
        if int(max_episode_steps) < 1:
            raise SpecError(f"must be >= 1 (got {max_episode_steps})", field="max_episode_steps")
        from autoworld.envs.grid.levels import bank

        # levels are seeded by the spec's content hash, which covers max_steps: take the banks
        # of the original specs so that a shorter or longer episode keeps the same levels
        banks = [bank(w, split) for w in worlds]
        worlds = [w.model_copy(update={"max_steps": int(max_episode_steps)}) for w in worlds]
    return make_engine(worlds, num_envs=num_envs, device=device, seed=seed, world_ids=world_ids,
                       banks=banks, split=split, compile=compile, bucketing=bucketing,
                       cuda_graph=cuda_graph)


def observation_space(engine: GridEngine) -> spaces.Dict:
    """The single-env observation space: one ``Box`` per key of ``engine.observation_spec()``.

    Example:
        >>> from autoworld.envs.catalogue import load_world
        >>> observation_space(GridEngine(load_world("DoorKey-8x8")))
        Dict('image': Box(0, 23, (7, 7), uint8))
    """
    boxes = {}
    for key, (shape, dtype, low, high) in engine.observation_spec().items():
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        boxes[key] = spaces.Box(low=low, high=high, shape=tuple(shape), dtype=np_dtype)
    return spaces.Dict(boxes)


def _check_render_mode(render_mode: str | None) -> None:
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise EngineError(f"unknown render_mode {render_mode!r}; use one of {RENDER_MODES}")


def to_numpy(tree: Any) -> Any:
    """Tensors (nested in dicts) as numpy arrays; anything else unchanged."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu().numpy()
    if isinstance(tree, dict):
        return {k: to_numpy(v) for k, v in tree.items()}
    return tree


def one_action(action: Any, n: int) -> int:
    """A single env's action as an int in ``0..n-1``: a Python or numpy integer, or a 0-d
    integer array or tensor. Floats, strings and anything out of range are errors (``int()``
    would truncate 2.9 to 2 and parse "3")."""
    value = action
    if isinstance(value, torch.Tensor | np.ndarray) and value.ndim == 0:
        value = value.item()
    if not isinstance(value, int | np.integer):
        raise EngineError(f"action must be an int in 0..{n - 1} (got {action!r} of type "
                          f"{type(action).__name__})")
    if not 0 <= int(value) < n:
        raise EngineError(f"action must be in 0..{n - 1} (got {action})")
    return int(value)


def batch_actions(actions: Any, num_envs: int, n: int, device: torch.device) -> torch.Tensor:
    """``(num_envs,)`` integer actions in ``0..n-1`` as a long tensor on ``device``.

    Arrays, lists and CPU tensors are checked in full (dtype, shape, range). A tensor on
    another device is checked for dtype and shape only: its range check would wait for the
    device at every step; out-of-range values there are the caller's to avoid."""
    if isinstance(actions, torch.Tensor):
        if actions.dtype.is_floating_point or actions.dtype.is_complex \
                or actions.dtype == torch.bool:
            raise EngineError(f"actions must be integers in 0..{n - 1} (got a "
                              f"{actions.dtype} tensor)")
        a = actions
    else:
        arr = np.asarray(actions)
        if arr.dtype.kind not in "iu":
            raise EngineError(f"actions must be integers in 0..{n - 1} (got dtype {arr.dtype})")
        a = torch.as_tensor(arr)
    if tuple(a.shape) != (num_envs,):
        raise EngineError(f"actions must have shape ({num_envs},), one per env (got "
                          f"{tuple(a.shape)})")
    if a.device.type == "cpu":
        bad = (a < 0) | (a >= n)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise EngineError(f"actions must be in 0..{n - 1} (env {i} got {int(a[i])})")
    return a.to(device=device, dtype=torch.long)


def _terminal_state(engine: GridEngine, before: GridState, actions: torch.Tensor) -> GridState:
    """The state an episode ended in, which the engine's same-step autoreset has replaced.

    Replays the step's transition on a copy of the state before it (what ``_step_impl`` does
    before resetting): the draws are counter-based on (key, tick), so the replay is exact.
    """
    s = before.clone()
    engine.transition(s, actions)
    s.t = s.t + 1
    return s


# ======================================================================== single env
class GridEnv(gymnasium.Env):
    """One grid world as a standard Gymnasium env, backed by a one-env ``GridEngine`` on CPU.

    Observations are dicts of numpy arrays (``observation_space`` is a ``Dict`` of ``Box``);
    actions are ``Discrete(7)``. When an episode ends, ``step`` returns its true final
    observation; call ``reset()`` to start the next one (without a seed it draws the next level
    from the env's seeded stream; ``options={"level": i}`` picks level ``i`` of the bank).

    Args:
        world: the world spec.
        render_mode: ``"rgb_array"`` (uint8 HxWx3) or ``"ansi"`` (text), or None.
        seed: root seed used when the first ``reset`` has none (default: drawn from entropy).
        split: level bank to play (``train``, ``validation`` or ``test``).
        max_episode_steps: override the spec's ``max_steps`` (levels stay the same).
        tile: pixels per cell of ``rgb_array`` frames.

    Example:
        >>> env = GridEnv(resolve_world("DoorKey-8x8"), render_mode="ansi")
        >>> obs, info = env.reset(seed=0, options={"level": 3})
        >>> obs, reward, terminated, truncated, info = env.step(2)
        >>> print(env.render().splitlines()[0])
        ########
    """

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}

    def __init__(self, world: GridWorldSpec, *, render_mode: str | None = None,
                 seed: int | None = None, split: str = "train",
                 max_episode_steps: int | None = None, tile: int = 16) -> None:
        _check_render_mode(render_mode)
        self.engine = _build_engine([world], 1, device="cpu", seed=0 if seed is None else seed,
                                    world_ids=None, split=split,
                                    max_episode_steps=max_episode_steps)
        self.world = self.engine.worlds[0]
        self.observation_space = observation_space(self.engine)
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self.render_mode = render_mode
        self.max_episode_steps = self.world.max_steps
        self.tile = tile
        self._seeded = seed is not None
        self._ended: GridState | None = None  # terminal state of the last episode, for render

    @property
    def num_levels(self) -> int:
        """Number of levels in the env's bank."""
        return int(self.engine.bank_count[0])

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict]:
        """Start an episode; returns ``(obs, {"level": index in the bank})``."""
        super().reset(seed=seed)
        options = dict(options or {})
        level = options.pop("level", None)
        if options:
            raise EngineError(f"unknown reset option(s) {sorted(options)}; the only one is "
                              "'level'")
        level_ids = None
        if level is not None:
            if not 0 <= int(level) < self.num_levels:
                raise EngineError(f"level must be in 0..{self.num_levels - 1} (got {level})")
            level_ids = torch.tensor([int(level)], dtype=torch.long)
        if seed is None and not self._seeded:
            seed = int(self.np_random.integers(SEED_BOUND))  # gymnasium: entropy when unseeded
        if seed is not None:
            self._seeded = True
        obs = self.engine.reset(seed=seed, level_ids=level_ids)
        self._ended = None
        level_index = int(self.engine.state.level[0] - self.engine.bank_offset[0])
        return self._obs(obs), {"level": level_index}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        """Take one action; an ended episode returns its true final observation."""
        actions = torch.tensor([one_action(action, NUM_ACTIONS)], dtype=torch.long)
        before = self.engine.state.clone() if self.render_mode is not None else None
        obs, reward, term, trunc, info = self.engine.step(actions)
        terminated, truncated = bool(term[0]), bool(trunc[0])
        self._ended = None
        if terminated or truncated:
            obs = info["final_obs"]
            if before is not None:
                self._ended = _terminal_state(self.engine, before, actions)
        return self._obs(obs), float(reward[0]), terminated, truncated, {}

    def render(self) -> np.ndarray | str | None:
        """The current frame (the final state after an episode ends, until ``reset``)."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; make the env with "
                                  f"render_mode in {RENDER_MODES}")
            return None
        if self.render_mode == "rgb_array":
            return render_rgb(self.engine, 0, self.tile, state=self._ended)
        return render_ascii(self.engine, 0, state=self._ended) + "\n"

    @staticmethod
    def _obs(obs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        # copies: users keep what they are given (gymnasium's check_returned_data_not_reused)
        return {k: v[0].detach().cpu().numpy().copy() for k, v in obs.items()}


# ======================================================================== vector env
class GridVectorEnv(VectorEnv):
    """The native batched env: ``num_envs`` grid envs stepped by one ``GridEngine``.

    Same-step autoreset (``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP``): the
    observation of an env whose episode ended is already its next episode's first observation,
    and ``info`` carries

    - ``final_obs``: the batched observation dict (same layout as ``obs``) whose rows where
      ``info["_final_obs"]`` is true hold the true final observations (other rows are
      unspecified);
    - ``final_info`` (empty: per-env step infos carry nothing else) with mask ``_final_info``;
    - ``episode``: ``{"r": return, "l": length}`` of the episodes that ended (zero elsewhere),
      with mask ``_episode`` (off with ``episode_statistics=False``).

    Everything stays on the engine's device (no host synchronisation in ``step``) unless
    ``numpy=True``, which returns numpy arrays instead. Masks are always present, so the info
    layout does not depend on whether an episode ended.

    Args:
        worlds: one world spec or several (a heterogeneous batch).
        num_envs: batch size.
        device: torch device of the engine and of returned tensors.
        numpy: return numpy arrays instead of torch tensors.
        seed: root seed used when the first ``reset`` has none (default: drawn from entropy).
        world_ids: which world each env runs (default round-robin).
        split: level bank to play (``train``, ``validation`` or ``test``).
        max_episode_steps: override every world's ``max_steps`` (levels stay the same).
        render_mode: ``"rgb_array"`` or ``"ansi"``; ``render()`` returns one frame per env.
        episode_statistics: add ``info["episode"]`` (turn off under gymnasium's
            ``RecordEpisodeStatistics`` wrapper, which adds its own).
        compile: wrap the engine step in ``torch.compile``.
        cuda_graph: replay the engine step as a recorded CUDA graph (CUDA devices only; see
            ``autoworld.envs.grid.graphs``); None: the ``AUTOWORLD_CUDA_GRAPH`` environment
            default.
        tile: pixels per cell of ``rgb_array`` frames.
        bucketing: how a mix of worlds with different component sets runs: ``"auto"`` (one
            program per component set, see ``autoworld.envs.grid.bucketed``) or ``"none"``.

    Example:
        >>> envs = GridVectorEnv(resolve_world("DoorKey-8x8"), num_envs=4, seed=0)
        >>> obs, info = envs.reset()
        >>> obs, reward, terminated, truncated, info = envs.step(torch.zeros(4, dtype=torch.long))
        >>> sorted(info)
        ['_episode', '_final_info', '_final_obs', 'episode', 'final_info', 'final_obs']
    """

    metadata: dict[str, Any] = {
        "render_modes": list(RENDER_MODES),
        "render_fps": RENDER_FPS,
        "autoreset_mode": AutoresetMode.SAME_STEP,
    }

    def __init__(self, worlds: GridWorldSpec | Sequence[GridWorldSpec], num_envs: int = 1, *,
                 device: str | torch.device = "cpu", numpy: bool = False,
                 seed: int | None = None, world_ids: Sequence[int] | None = None,
                 split: str = "train", max_episode_steps: int | None = None,
                 render_mode: str | None = None, episode_statistics: bool = True,
                 compile: bool = False, tile: int = 16, bucketing: str = "auto",
                 cuda_graph: bool | None = None) -> None:
        _check_render_mode(render_mode)
        world_list = [worlds] if isinstance(worlds, GridWorldSpec) else list(worlds)
        self.engine = _build_engine(world_list, num_envs, device=device,
                                    seed=0 if seed is None else seed, world_ids=world_ids,
                                    split=split, max_episode_steps=max_episode_steps,
                                    compile=compile, bucketing=bucketing,
                                    cuda_graph=cuda_graph)
        self.worlds = self.engine.worlds
        self.num_envs = self.engine.num_envs
        self.device = self.engine.device
        self.numpy = bool(numpy)
        self.render_mode = render_mode
        self.episode_statistics = episode_statistics
        self.tile = tile
        self.metadata = dict(self.metadata)
        self.single_observation_space = observation_space(self.engine)
        self.single_action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._seeded = seed is not None
        B = self.num_envs
        self._return = torch.zeros(B, dtype=torch.float32, device=self.device)  # (B,)
        self._length = torch.zeros(B, dtype=torch.long, device=self.device)  # (B,)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset every env, or those in ``options["reset_mask"]`` (B,) bool.

        ``seed`` (one int) re-derives every env's random stream (env i from (seed, i));
        ``options["level"]`` (an int or (B,) ints) picks levels by index in each env's bank.
        Returns the observation of all envs and ``{"level": (B,) index in the bank}``.
        """
        if seed is not None and not isinstance(seed, int | np.integer):
            raise EngineError("reset(seed=...) takes one int; env i derives its stream from "
                              f"(seed, i) (got {type(seed).__name__})")
        seed = None if seed is None else int(seed)  # gymnasium's reset wants a Python int
        super().reset(seed=seed)
        options = dict(options or {})
        level = options.pop("level", None)
        mask = options.pop("reset_mask", None)
        if options:
            raise EngineError(f"unknown reset option(s) {sorted(options)}; use 'level' or "
                              "'reset_mask'")
        B = self.num_envs
        level_ids = None
        if level is not None:
            level_ids = torch.as_tensor(level, dtype=torch.long, device=self.device)
            level_ids = level_ids.expand(B) if level_ids.dim() == 0 else level_ids
            if level_ids.shape != (B,):
                raise EngineError(f"options['level'] must be an int or {B} ints")
            counts = self.engine.bank_count.to(level_ids.device)
            bad = (level_ids < 0) | (level_ids >= counts)
            if bool(bad.any()):
                i = int(bad.nonzero()[0, 0])
                raise EngineError(f"options['level']: env {i} asks for level "
                                  f"{int(level_ids[i])}, its world's bank holds levels "
                                  f"0..{int(counts[i]) - 1}")
        if mask is not None:
            mask = torch.as_tensor(mask, device=self.device)
            if mask.dtype != torch.bool or mask.shape != (B,):
                raise EngineError(f"options['reset_mask'] must be {B} bools")
        if seed is None and not self._seeded:
            seed = int(self.np_random.integers(SEED_BOUND))  # gymnasium: entropy when unseeded
        if seed is not None:
            self._seeded = True
        obs = self.engine.reset(seed=None if seed is None else int(seed), level_ids=level_ids,
                                mask=mask)
        if mask is None:
            self._return = torch.zeros_like(self._return)
            self._length = torch.zeros_like(self._length)
        else:
            self._return = torch.where(mask, 0.0, self._return)
            self._length = torch.where(mask, 0, self._length)
        info = {"level": self.engine.level_index()}
        return self._out(obs), self._out(info)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Step every env with ``actions`` (B,) ints (tensor, array or list;
        :func:`batch_actions` checks them)."""
        actions = batch_actions(actions, self.num_envs, NUM_ACTIONS, self.device)
        obs, reward, terminated, truncated, engine_info = self.engine.step(actions)
        done = terminated | truncated  # (B,) bool
        info: dict[str, Any] = {}
        if "final_obs" in engine_info:
            info["final_obs"] = engine_info["final_obs"]
            info["_final_obs"] = done
            info["final_info"] = {}
            info["_final_info"] = done
        if self.episode_statistics:
            self._return = self._return + reward
            self._length = self._length + 1
            info["episode"] = {"r": torch.where(done, self._return, 0.0),
                               "l": torch.where(done, self._length, 0)}
            info["_episode"] = done
            self._return = torch.where(done, 0.0, self._return)
            self._length = torch.where(done, 0, self._length)
        return (self._out(obs), self._out(reward), self._out(terminated), self._out(truncated),
                self._out(info))

    def render(self) -> tuple[np.ndarray | str, ...] | None:
        """One frame per env: uint8 HxWx3 arrays (``rgb_array``) or strings (``ansi``)."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode")
            return None
        if self.render_mode == "rgb_array":
            return tuple(render_rgb(self.engine, i, self.tile) for i in range(self.num_envs))
        return tuple(render_ascii(self.engine, i) + "\n" for i in range(self.num_envs))

    def _out(self, tree: Any) -> Any:
        return to_numpy(tree) if self.numpy else tree


# ======================================================================== constructors
def make_env(world: WorldLike | None = None, spec: WorldLike | None = None, *,
             render_mode: str | None = None, seed: int | None = None, split: str = "train",
             max_episode_steps: int | None = None, tile: int = 16) -> GridEnv:
    """A single Gymnasium env of a catalogue ``world`` or of any ``spec`` file.

    This is the ``entry_point`` of every registered ``autoworld/*-v0`` id.

    Example:
        >>> env = make_env("DoorKey-8x8", render_mode="rgb_array")
        >>> _ = env.reset(seed=1)
        >>> env.render().shape
        (128, 128, 3)
    """
    return GridEnv(resolve_world(world, spec), render_mode=render_mode, seed=seed, split=split,
                   max_episode_steps=max_episode_steps, tile=tile)


# gymnasium.make reads the creator's metadata to validate render modes
make_env.metadata = GridEnv.metadata  # type: ignore[attr-defined]


def make_vector_env(num_envs: int = 1, world: WorldLike | None = None,
                    spec: WorldLike | None = None, device: str | torch.device = "cpu",
                    numpy: bool = False, seed: int | None = None, *,
                    worlds: Sequence[WorldLike] | None = None, **kw: Any) -> GridVectorEnv:
    """The native batched env of one world (``world`` / ``spec``) or a mix (``worlds=[...]``).

    This is the ``vector_entry_point`` of every registered id; other keyword arguments go to
    ``GridVectorEnv`` (``world_ids``, ``split``, ``max_episode_steps``, ``render_mode``, ...).

    Example:
        >>> envs = make_vector_env(8, worlds=["DoorKey-8x8", "DoorKey-8x8"], numpy=True, seed=0)
        >>> obs, info = envs.reset()
        >>> obs["image"].shape, type(obs["image"]).__name__
        ((8, 7, 7), 'ndarray')
    """
    return GridVectorEnv(_resolve_worlds(world, spec, worlds), num_envs, device=device,
                         numpy=numpy, seed=seed, **kw)
