"""Gymnasium adapters of the arm engine, mirroring ``autoworld.gym_env``'s grid adapters.

``ArmEnv`` is a single ``gymnasium.Env`` (numpy observations, passes
``gymnasium.utils.env_checker.check_env``, ``render_mode="rgb_array"``); ``ArmVectorEnv`` is the
native batched ``gymnasium.vector.VectorEnv`` (torch tensors on the engine's device, or numpy)
with same-step autoreset.

Actions: ``ee_delta`` worlds take ``Box(-1, 1, (3,))`` (dx, dy, grip); ``joint_velocity`` worlds
take ``Box(-1, 1, (N_MAX + 1,))``: one velocity per (padded) joint, then the grip.

Example:
    >>> from autoworld.envs.arm.spec import arm_world
    >>> env = ArmEnv(arm_world("reach", "arm3"), render_mode="rgb_array")
    >>> obs, info = env.reset(seed=0)
    >>> obs["joint_state"].shape, env.render().shape
    ((7, 3), (256, 256, 3))
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

from autoworld.envs.arm.embodiment import N_MAX
from autoworld.envs.arm.engine import ArmEngine
from autoworld.envs.arm.render import render_rgb
from autoworld.envs.arm.spec import ArmWorldSpec, load_arm_spec
from autoworld.errors import EngineError, SpecError

RENDER_MODES = ("rgb_array",)
RENDER_FPS = 20
SEED_BOUND = 2**31
TASK_BOUND = 25.0  # task features are coordinates (|x| <= 2) and small ratios

WorldLike = str | os.PathLike | ArmWorldSpec


def resolve_arm_world(world: WorldLike | None = None,
                      spec: WorldLike | None = None) -> ArmWorldSpec:
    """The arm spec named by a catalogue ``world`` or a ``spec`` file (exactly one)."""
    if (world is None) == (spec is None):
        raise SpecError("give exactly one of world=NAME (an arm catalogue world) or spec=PATH",
                        field="world" if world is not None else "spec")
    source = world if world is not None else spec
    if isinstance(source, ArmWorldSpec):
        return source
    if world is not None:
        from autoworld.envs.arm.registration import load_arm_world

        return load_arm_world(os.fspath(world))
    return load_arm_spec(source)


def observation_space(engine: ArmEngine) -> spaces.Dict:
    """Single-env observation space (``joint_mask`` as ``MultiBinary``, int8)."""
    boxes: dict[str, spaces.Space] = {}
    for key, (shape, dtype, low, high) in engine.observation_spec().items():
        if dtype == torch.bool:
            boxes[key] = spaces.MultiBinary(shape[0])
        else:
            bound = TASK_BOUND if key == "task" else None
            boxes[key] = spaces.Box(low=-bound if bound else low, high=bound or high,
                                    shape=tuple(shape), dtype=np.float32)
    return spaces.Dict(boxes)


def action_space(engine: ArmEngine) -> spaces.Box:
    """``Box(-1, 1, (3,))`` for ee_delta, ``Box(-1, 1, (N_MAX + 1,))`` for joint_velocity."""
    dim = 3 if engine.interface == "ee_delta" else N_MAX + 1
    return spaces.Box(-1.0, 1.0, (dim,), dtype=np.float32)


def _with_max_steps(worlds, max_episode_steps: int | None):
    """The worlds with ``max_steps`` replaced (the scene bank is salted by the spec's content
    hash, so another ``max_steps`` also draws other scenes)."""
    if max_episode_steps is None:
        return worlds
    if int(max_episode_steps) < 1:
        raise SpecError(f"must be >= 1 (got {max_episode_steps})", field="max_episode_steps")
    one = isinstance(worlds, ArmWorldSpec)
    out = [w if w.max_steps == int(max_episode_steps)
           else w.model_copy(update={"max_steps": int(max_episode_steps)})
           for w in ([worlds] if one else worlds)]
    return out[0] if one else out


def _np_obs(obs: dict[str, torch.Tensor], row: int | None = None) -> dict[str, np.ndarray]:
    out = {}
    for k, v in obs.items():
        a = (v if row is None else v[row]).detach().cpu().numpy()
        out[k] = a.astype(np.int8) if a.dtype == np.bool_ else a.copy()
    return out


class ArmEnv(gymnasium.Env):
    """One arm world as a Gymnasium env, backed by a one-env ``ArmEngine`` on CPU.

    Args:
        world: the world spec.
        render_mode: ``"rgb_array"`` or None.
        seed: root seed of the first ``reset`` that has none: ``ArmEnv(w, seed=s).reset()``
            starts the episode ``reset(seed=s)`` starts (default: from entropy).
        split: ``"train"`` or ``"shifted"`` scenes.
        obs_velocity: ablation: add ``joint_vel`` to the observation.
        max_episode_steps: override the spec's ``max_steps``.
        size: frame size in pixels.
    """

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}

    def __init__(self, world: ArmWorldSpec, *, render_mode: str | None = None,
                 seed: int | None = None, split: str = "train", obs_velocity: bool = False,
                 max_episode_steps: int | None = None, size: int = 256) -> None:
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise EngineError(f"unknown render_mode {render_mode!r}; use one of {RENDER_MODES}")
        world = _with_max_steps(world, max_episode_steps)
        self.engine = ArmEngine(world, num_envs=1, seed=0 if seed is None else seed,
                                split=split, obs_velocity=obs_velocity)
        self.world = world
        self.observation_space = observation_space(self.engine)
        self.action_space = action_space(self.engine)
        self.render_mode = render_mode
        # the state an episode ended in (its last frame), before the engine's reset
        self.engine.keep_final_state = render_mode is not None
        self.size = size
        self._seeded = seed is not None
        self._first_seed = seed  # the first reset without a seed starts from it
        self._ended = None

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict]:
        """Start an episode; returns ``(obs, {"scene": scene id})``."""
        super().reset(seed=seed)
        if options:
            raise EngineError(f"unknown reset option(s) {sorted(options)}; there are none")
        if seed is None:  # the constructor's seed, as reset(seed=...) would start
            seed = self._first_seed
        self._first_seed = None
        if seed is None and not self._seeded:
            seed = int(self.np_random.integers(SEED_BOUND))
        if seed is not None:
            self._seeded = True
        obs = self.engine.reset(seed=seed)
        self._ended = None
        return _np_obs(obs, 0), {"scene": int(self.engine.state.scene_key[0])}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        """One step; an ended episode returns its true final observation."""
        a = torch.as_tensor(np.asarray(action, dtype=np.float32)).reshape(1, -1)
        if a.shape[1] != self.action_space.shape[0]:
            raise EngineError(f"action must have {self.action_space.shape[0]} values "
                              f"(got {a.shape[1]})")
        if not bool(torch.isfinite(a).all()):  # a NaN would poison the state to the episode end
            raise EngineError(f"action must be finite numbers (got {a[0].tolist()})")
        obs, reward, term, trunc, info = self.engine.step(a)
        terminated, truncated = bool(term[0]), bool(trunc[0])
        self._ended = None
        if terminated or truncated:
            obs = info["final_obs"]
            self._ended = info.get("final_state")  # with a render_mode
        return (_np_obs(obs, 0), float(reward[0]), terminated, truncated,
                {"success": bool(info["success"][0])})

    def render(self) -> np.ndarray | None:
        """The current frame (the final state after an episode ends, until ``reset``)."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; make the env with "
                                  "render_mode='rgb_array'")
            return None
        return render_rgb(self.engine, 0, self.size, state=self._ended)


class ArmVectorEnv(VectorEnv):
    """The native batched env: ``num_envs`` arm envs stepped by one ``ArmEngine``.

    Same-step autoreset (``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP``); ``info``
    carries ``final_obs`` / ``_final_obs``, ``final_info`` / ``_final_info``, ``success`` and
    ``episode`` (``{"r", "l"}``) / ``_episode`` like the grid vector env.

    Args:
        worlds: one spec or several (a heterogeneous batch; one action interface).
        num_envs: batch size.
        device: torch device.
        numpy: return numpy arrays instead of tensors.
        seed: root seed of the first ``reset`` that has none (as ``reset(seed=...)`` would).
        world_ids: which world each env runs (default round-robin).
        split: ``"train"`` or ``"shifted"``.
        obs_velocity: ablation: add ``joint_vel``.
        render_mode: ``"rgb_array"``: ``render()`` returns one frame per env.
        episode_statistics: add ``info["episode"]``.
        max_episode_steps: override every world's ``max_steps``.
    """

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS,
                                "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, worlds: ArmWorldSpec | Sequence[ArmWorldSpec], num_envs: int = 1, *,
                 device: str | torch.device = "cpu", numpy: bool = False,
                 seed: int | None = None, world_ids: Sequence[int] | None = None,
                 split: str = "train", obs_velocity: bool = False,
                 render_mode: str | None = None, episode_statistics: bool = True,
                 max_episode_steps: int | None = None, size: int = 256) -> None:
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise EngineError(f"unknown render_mode {render_mode!r}; use one of {RENDER_MODES}")
        worlds = _with_max_steps(worlds, max_episode_steps)
        self.engine = ArmEngine(worlds, num_envs=num_envs, device=device,
                                seed=0 if seed is None else seed, world_ids=world_ids,
                                split=split, obs_velocity=obs_velocity)
        self.worlds = self.engine.worlds
        self.num_envs = self.engine.num_envs
        self.device = self.engine.device
        self.numpy = bool(numpy)
        self.render_mode = render_mode
        self.episode_statistics = episode_statistics
        self.size = size
        self.metadata = dict(self.metadata)
        self.single_observation_space = observation_space(self.engine)
        self.single_action_space = action_space(self.engine)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._seeded = seed is not None
        self._first_seed = seed  # the first reset without a seed starts from it
        self._return = torch.zeros(self.num_envs, device=self.device)
        self._length = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset every env, or those in ``options["reset_mask"]`` (B,) bool."""
        if seed is not None and not isinstance(seed, int | np.integer):
            raise EngineError("reset(seed=...) takes one int; env i derives its stream from "
                              f"(seed, i) (got {type(seed).__name__})")
        seed = None if seed is None else int(seed)  # gymnasium's reset wants a Python int
        super().reset(seed=seed)
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if options:
            raise EngineError(f"unknown reset option(s) {sorted(options)}; use 'reset_mask'")
        if mask is not None:
            mask = torch.as_tensor(mask, device=self.device)
            if mask.dtype != torch.bool or mask.shape != (self.num_envs,):
                raise EngineError(f"options['reset_mask'] must be {self.num_envs} bools")
        if seed is None:  # the constructor's seed, as reset(seed=...) would (a mask: for those)
            seed = self._first_seed
        self._first_seed = None
        if seed is None and not self._seeded:
            seed = int(self.np_random.integers(SEED_BOUND))
        if seed is not None:
            self._seeded = True
        obs = self.engine.reset(seed=seed, mask=mask)  # a mask keeps the other envs going
        if mask is None:
            self._return.zero_()
            self._length.zero_()
        else:
            self._return = torch.where(mask, 0.0, self._return)
            self._length = torch.where(mask, 0, self._length)
        return self._out(self._obs(obs)), self._out({"scene": self.engine.state.scene_key
                                                     .clone()})

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Step every env with ``actions`` (B, action dim) in [-1, 1] (clipped). A NaN or
        infinite action is an error on the CPU; on another device (where checking would wait
        for the device at every step) NaN acts as 0 and +-inf as +-1, so it never poisons a
        state."""
        actions = torch.as_tensor(actions, device=self.device, dtype=torch.float32)
        if actions.device.type == "cpu":
            if not bool(torch.isfinite(actions).all()):
                bad = (~torch.isfinite(actions)).any(-1).nonzero()[0, 0] \
                    if actions.dim() > 1 else 0
                raise EngineError(f"actions must be finite numbers (env {int(bad)} got "
                                  f"{actions[bad].tolist()})")
        else:
            actions = torch.nan_to_num(actions, nan=0.0, posinf=1.0, neginf=-1.0)
        obs, reward, terminated, truncated, engine_info = self.engine.step(actions)
        done = terminated | truncated
        # the success of the episodes that ended, per env, as in a SyncVectorEnv's final_info;
        # "success" (every env's step) stays for the existing readers
        info: dict[str, Any] = {"final_obs": self._obs(engine_info["final_obs"]),
                                "_final_obs": done,
                                "final_info": {"success": engine_info["success"] & done,
                                               "_success": done},
                                "_final_info": done, "success": engine_info["success"]}
        if self.episode_statistics:
            self._return = self._return + reward
            self._length = self._length + 1
            info["episode"] = {"r": torch.where(done, self._return, 0.0),
                               "l": torch.where(done, self._length, 0)}
            info["_episode"] = done
            self._return = torch.where(done, 0.0, self._return)
            self._length = torch.where(done, 0, self._length)
        return (self._out(self._obs(obs)), self._out(reward), self._out(terminated),
                self._out(truncated), self._out(info))

    @staticmethod
    def _obs(obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The engine's observation as handed out: the constant rows (``joint_desc``,
        ``joint_mask``) copied, so that no two observations share memory, and ``joint_mask``
        in its space's dtype (int8)."""
        out = dict(obs)
        out["joint_desc"] = obs["joint_desc"].clone()
        out["joint_mask"] = obs["joint_mask"].to(torch.int8)
        return out

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One frame per env."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode")
            return None
        return tuple(render_rgb(self.engine, i, self.size) for i in range(self.num_envs))

    def _out(self, tree: Any) -> Any:
        if not self.numpy:
            return tree
        if isinstance(tree, torch.Tensor):
            return tree.detach().cpu().numpy()
        if isinstance(tree, dict):
            return {k: self._out(v) for k, v in tree.items()}
        return tree


def make_arm_env(world: WorldLike | None = None, spec: WorldLike | None = None, *,
                 render_mode: str | None = None, seed: int | None = None,
                 split: str = "train", obs_velocity: bool = False,
                 max_episode_steps: int | None = None, size: int = 256) -> ArmEnv:
    """A single Gymnasium env of an arm catalogue ``world`` or any arm ``spec`` file (the
    ``entry_point`` of every registered arm id)."""
    return ArmEnv(resolve_arm_world(world, spec), render_mode=render_mode, seed=seed,
                  split=split, obs_velocity=obs_velocity, max_episode_steps=max_episode_steps,
                  size=size)


make_arm_env.metadata = ArmEnv.metadata  # type: ignore[attr-defined]


def make_arm_vector_env(num_envs: int = 1, world: WorldLike | None = None,
                        spec: WorldLike | None = None, device: str | torch.device = "cpu",
                        numpy: bool = False, seed: int | None = None, *,
                        worlds: Sequence[WorldLike] | None = None, **kw: Any) -> ArmVectorEnv:
    """The native batched env of one arm world or a mix (``worlds=[...]``); the
    ``vector_entry_point`` of every registered arm id."""
    if worlds is None:
        specs = [resolve_arm_world(world, spec)]
    else:
        if world is not None or spec is not None:
            raise SpecError("give either world=/spec= or worlds=[...], not both",
                            field="worlds")
        specs = [w if isinstance(w, ArmWorldSpec) else resolve_arm_world(world=w)
                 for w in worlds]
    return ArmVectorEnv(specs, num_envs, device=device, numpy=numpy, seed=seed, **kw)
