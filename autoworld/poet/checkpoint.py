"""POET checkpoints: one folder per iteration, verified by a manifest of SHA-256 digests.

``checkpoints/iter-000012/`` holds ``tensors.safetensors`` (every pair's and archived agent's
weights and Adam moments) and ``state.json`` (the rest: schedules, archive, worlds, score matrix,
ANNECS, RNG states, counters), then ``manifest.json`` with each file's size and digest. The
folder is assembled under a temporary name, every file fsynced, then renamed into place, so a
killed run leaves either a complete checkpoint or none. The last ``keep`` checkpoints stay on
disk; ``load_latest`` verifies the newest and falls back to the previous one when it is
truncated or corrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from autoworld.atomic import atomic_write
from autoworld.poet.config import CheckpointError

log = logging.getLogger(__name__)
FORMAT = "autoworld-poet-checkpoint/1"
_FILES = ("tensors.safetensors", "state.json")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(root: str | Path, iteration: int, tensors: dict[str, torch.Tensor],
                    state: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint ``iteration`` under ``root`` atomically and prune all but the newest
    ``keep``; returns its folder."""
    from safetensors.torch import save as st_save

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"iter-{iteration:06d}"
    tmp = root / f".iter-{iteration:06d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    payloads = {
        "tensors.safetensors": st_save({k: v.detach().cpu().contiguous()
                                        for k, v in tensors.items()}),
        "state.json": json.dumps(state, sort_keys=True).encode(),
    }
    manifest = {"format": FORMAT, "iteration": iteration,
                "files": {n: {"bytes": len(b), "sha256": _digest(b)} for n, b in payloads.items()}}
    for name, data in payloads.items():
        atomic_write(tmp / name, data)
    atomic_write(tmp / "manifest.json", json.dumps(manifest, indent=1))
    if final.exists():  # a re-run of the same iteration after a resume
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: str | Path) -> list[Path]:
    """Checkpoint folders under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("iter-"))


def verify(folder: Path) -> dict[str, bytes]:
    """The checkpoint's files, after checking them against its manifest; raises
    ``CheckpointError`` naming the broken file."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder}: manifest.json is missing or unreadable ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{folder}: unknown checkpoint format {manifest.get('format')!r}")
    out = {}
    for name in _FILES:
        meta = manifest["files"].get(name)
        try:
            data = (folder / name).read_bytes()
        except OSError as exc:
            raise CheckpointError(f"{folder / name}: missing ({exc.strerror})") from None
        if meta is None or len(data) != meta["bytes"]:
            raise CheckpointError(f"{folder / name}: truncated ({len(data)} bytes, manifest says "
                                  f"{meta and meta['bytes']})")
        if _digest(data) != meta["sha256"]:
            raise CheckpointError(f"{folder / name}: corrupted (SHA-256 does not match the "
                                  "manifest)")
        out[name] = data
    return out


def load_latest(root: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], list[str]]:
    """(tensors, state, warnings) of the newest checkpoint that verifies. Each broken newer
    checkpoint adds a warning; none usable raises ``CheckpointError``."""
    from safetensors.torch import load as st_load

    warnings: list[str] = []
    folders = list_checkpoints(root)
    if not folders:
        raise CheckpointError(f"{root}: no checkpoint to resume from; start the run without "
                              "--resume")
    for folder in reversed(folders):
        try:
            files = verify(folder)
            return st_load(files["tensors.safetensors"]), json.loads(files["state.json"]), warnings
        except (CheckpointError, ValueError) as exc:
            warnings.append(f"{exc}; falling back to the previous checkpoint")
            log.warning("%s", warnings[-1])
    raise CheckpointError(f"{root}: every checkpoint is corrupted ({'; '.join(warnings)}); "
                          "start a new run")
