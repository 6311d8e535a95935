"""Demonstration datasets of the arm family: collection with scripted experts, save and load.

A ``DemoSet`` holds E episodes padded to T steps (``valid`` marks real steps). Observations
are stored exactly as the engine gives them (no velocity history); the operator's identity and
speed are metadata only. On disk a dataset is a folder with ``tensors.safetensors`` and
``meta.json``, written atomically (a killed writer leaves the old folder or none).

Example:
    >>> from autoworld.envs.arm.spec import arm_world
    >>> from autoworld.envs.arm.experts import standard_operators
    >>> demos = collect_demos([arm_world("reach", "arm2")], 6, standard_operators(), seed=0)
    >>> len(demos), tuple(demos.ee_action.shape[::2])
    (6, (6, 3))
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from autoworld.atomic import new_folder_mode
from autoworld.envs.arm.embodiment import N_MAX
from autoworld.envs.arm.engine import TASK_DIM, ArmEngine
from autoworld.envs.arm.experts import Operator, ScriptedExpert
from autoworld.envs.arm.spec import ArmWorldSpec
from autoworld.errors import EngineError, SpecError

FORMAT_VERSION = 1
_LISTS = ("world", "task_name", "embodiment")


@dataclass
class DemoSet:
    """E demonstrations padded to T steps (shapes in the field comments)."""

    joint_state: torch.Tensor  # (E, T, N_MAX, 3)
    joint_desc: torch.Tensor  # (E, N_MAX, JOINT_DESC_DIM)
    joint_mask: torch.Tensor  # (E, N_MAX) bool
    ee: torch.Tensor  # (E, T, 3)
    task: torch.Tensor  # (E, T, TASK_DIM)
    ee_action: torch.Tensor  # (E, T, 3) commanded end-effector delta, ee_delta units
    joint_action: torch.Tensor  # (E, T, N_MAX) executed joint step / velocity limit
    valid: torch.Tensor  # (E, T) bool
    length: torch.Tensor  # (E,) int64
    success: torch.Tensor  # (E,) bool
    world: list[str]
    task_name: list[str]
    embodiment: list[str]
    scene: torch.Tensor  # (E,) int64 scene id within its world and split
    operator: torch.Tensor  # (E,) int64 index into operator_names (metadata only)
    speed: torch.Tensor  # (E,) float32 operator speed scale (metadata only)
    side: torch.Tensor  # (E,) int64: -1 passed left, +1 passed right, 0 not applicable
    operator_names: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # seed, split, worlds, ...

    def __len__(self) -> int:
        return int(self.length.shape[0])

    def _tensor_fields(self) -> list[str]:
        return [f.name for f in fields(self)
                if isinstance(getattr(self, f.name), torch.Tensor)]

    def subset(self, idx: Any) -> DemoSet:
        """The episodes ``idx`` (indices, a bool mask or a slice)."""
        if isinstance(idx, slice):
            idx = torch.arange(len(self))[idx]
        idx = torch.as_tensor(idx)
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        idx = idx.long()
        kw: dict[str, Any] = {k: getattr(self, k)[idx] for k in self._tensor_fields()}
        rows = idx.tolist()
        for k in _LISTS:
            kw[k] = [getattr(self, k)[i] for i in rows]
        return DemoSet(**kw, operator_names=list(self.operator_names), meta=dict(self.meta))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the folder ``path`` (tensors.safetensors + meta.json) atomically."""
        from safetensors.torch import save_file

        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            os.chmod(tmp, new_folder_mode())  # mkdtemp's folder is owner-only
            save_file({k: getattr(self, k).contiguous().cpu() for k in self._tensor_fields()},
                      str(tmp / "tensors.safetensors"))
            meta = {"format": "autoworld.arm.demos", "version": FORMAT_VERSION,
                    "operator_names": self.operator_names, "meta": self.meta,
                    **{k: getattr(self, k) for k in _LISTS}}
            with open(tmp / "meta.json", "w", encoding="utf-8") as f:
                json.dump(meta, f)
                f.flush()
                os.fsync(f.fileno())
            old = None
            if dest.exists():
                old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
                os.replace(dest, old)
            os.replace(tmp, dest)
            # the old copy, and any an earlier save killed between its renames left behind
            # (load would otherwise bring one back after the dataset is deleted)
            for stale in dest.parent.glob(f".{dest.name}.old-*"):
                shutil.rmtree(stale, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    @classmethod
    def load(cls, path: str | os.PathLike) -> DemoSet:
        """Read a folder written by ``save``."""
        from safetensors.torch import load_file

        src = Path(path)
        if not src.exists():
            _restore_interrupted(src)
        tf, mf = src / "tensors.safetensors", src / "meta.json"
        if not tf.is_file() or not mf.is_file():
            raise SpecError(f"{src} is not a demo dataset (needs tensors.safetensors and "
                            "meta.json; write one with DemoSet.save)", field="path")
        meta = json.loads(mf.read_text(encoding="utf-8"))
        if meta.get("format") != "autoworld.arm.demos" or meta.get("version") != FORMAT_VERSION:
            raise SpecError(f"{src}: unknown dataset format {meta.get('format')!r} version "
                            f"{meta.get('version')!r}", field="path")
        tensors = load_file(str(tf))
        return cls(**tensors, **{k: meta[k] for k in _LISTS},
                   operator_names=meta.get("operator_names", []), meta=meta.get("meta", {}))


def _restore_interrupted(dest: Path) -> None:
    """Put back the dataset a ``save`` killed between its two renames moved aside: ``save``
    moves the old folder to ``.NAME.old-PID`` and then the new one into place, so a kill
    between them leaves only the old copy, complete."""
    olds = sorted(dest.parent.glob(f".{dest.name}.old-*"), key=lambda p: p.stat().st_mtime)
    for old in reversed(olds):  # the newest first
        if (old / "tensors.safetensors").is_file() and (old / "meta.json").is_file():
            os.replace(old, dest)
            return


def collect_demos(worlds: Sequence[ArmWorldSpec], episodes: int, operators: Sequence[Operator],
                  seed: int, device: str | torch.device = "cpu", split: str = "train",
                  side: str = "random", num_scenes: int | None = None,
                  obs_velocity: bool = False) -> DemoSet:
    """Run the scripted expert for ``episodes`` episodes (worlds round-robin, one episode per
    env, all in one batch) and return them. Every episode runs to its end (success, failure
    or truncation); ``success`` says which succeeded.

    Args:
        worlds: arm world specs (one action interface for all).
        episodes: number of episodes E.
        operators: operators drawn uniformly per episode.
        seed: root seed (engine and expert).
        device: torch device of the rollout (the dataset is returned on CPU).
        split: ``"train"`` or ``"shifted"`` scenes.
        side: ``reach_around`` detour side: ``"random"``, ``"left"`` or ``"right"``.
        num_scenes: scene bank size per world (see ``ArmEngine``).
        obs_velocity: ablation only: not stored (the dataset never holds velocities).
    """
    worlds = list(worlds)
    if int(episodes) < 1:
        raise EngineError(f"episodes must be >= 1 (got {episodes})")
    if not operators:
        raise EngineError("give at least one operator (see standard_operators())")
    E = int(episodes)
    eng = ArmEngine(worlds, num_envs=E, device=device, seed=seed, split=split,
                    num_scenes=num_scenes, obs_velocity=obs_velocity)
    expert = ScriptedExpert(eng, operators, seed=seed, side=side)
    T = max(w.max_steps for w in worlds)
    dev = eng.device
    buf = {
        "joint_state": torch.zeros(E, T, N_MAX, 3, device=dev),
        "ee": torch.zeros(E, T, 3, device=dev),
        "task": torch.zeros(E, T, TASK_DIM, device=dev),
        "ee_action": torch.zeros(E, T, 3, device=dev),
        "joint_action": torch.zeros(E, T, N_MAX, device=dev),
        "valid": torch.zeros(E, T, dtype=torch.bool, device=dev),
    }
    done = torch.zeros(E, dtype=torch.bool, device=dev)
    length = torch.zeros(E, dtype=torch.long, device=dev)
    success = torch.zeros(E, dtype=torch.bool, device=dev)
    scene = eng.state.scene_key.clone()
    obs = eng.observe()
    meta_taken = False
    with torch.no_grad():
        for t in range(T):
            live = ~done
            action = expert.act(obs)
            if not meta_taken:
                operator, speed, side_t = (expert.operator.clone(), expert.speed.clone(),
                                           expert.side.clone())
                meta_taken = True
            obs_next, _, term, trunc, info = eng.step(action)
            for k in ("joint_state", "ee", "task"):
                buf[k][:, t] = obs[k]
            buf["ee_action"][:, t] = expert.last_ee_action
            buf["joint_action"][:, t] = info["joint_action"]
            buf["valid"][:, t] = live
            ended = live & (term | trunc)
            length = torch.where(ended, t + 1, length)
            success = success | (ended & info["success"])
            done = done | ended
            obs = obs_next
            if bool(done.all()):
                break
    Tn = int(length.max())
    valid = buf["valid"][:, :Tn]
    data = {k: (v[:, :Tn] * valid.view(E, Tn, *([1] * (v.dim() - 2))).to(v.dtype)
                if k != "valid" else valid).cpu()
            for k, v in buf.items()}
    ids = eng.world_ids.tolist()
    return DemoSet(**data, joint_desc=eng.joint_desc.cpu(), joint_mask=eng.joint_mask.cpu(),
                   length=length.cpu(), success=success.cpu(),
                   world=[worlds[i].name for i in ids], task_name=[worlds[i].task for i in ids],
                   embodiment=[worlds[i].arm.name for i in ids], scene=scene.cpu(),
                   operator=operator.cpu(), speed=speed.float().cpu(), side=side_t.cpu(),
                   operator_names=[o.name for o in operators],
                   meta={"seed": int(seed), "split": split, "side": side,
                         "interface": eng.interface, "num_scenes": num_scenes,
                         "worlds": [w.name for w in worlds],
                         "operators": [o.__dict__ for o in operators]})


