"""Saving policies and training state, atomically.

A policy is two files: ``<name>.safetensors`` (the weights) and ``<name>.json`` (a sidecar with
the world's content hash, the method, the policy config, the observation spec and the library
versions), enough to rebuild the network without the code that trained it. Training state
(optimizer, RNG states, counters, engine state) is one ``torch.save`` file. Every file is written
to a temporary name in the same folder, fsynced, then renamed, so a killed run never leaves a
half-written checkpoint.
"""

from __future__ import annotations

import io
import json
import platform
from pathlib import Path
from typing import Any

import torch

from autoworld.atomic import atomic_write
from autoworld.learners.policies import (
    ActorCritic,
    ObsSpec,
    PolicyConfig,
    policy_from_spec,
    spec_from_json,
    spec_to_json,
)

FORMAT = "autoworld-policy/1"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` atomically (see ``autoworld.atomic.atomic_write``)."""
    atomic_write(path, data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, text)


def versions() -> dict[str, str]:
    """Versions recorded in every sidecar."""
    from autoworld import __version__

    return {"autoworld": __version__, "torch": torch.__version__,
            "python": platform.python_version()}


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_suffix(".safetensors"), p.with_suffix(".json")


def save_policy(policy: ActorCritic, path: str | Path, *, spec_hash: str, method: str,
                world: str = "", extra: dict[str, Any] | None = None) -> Path:
    """Write ``policy`` as ``path.safetensors`` + ``path.json``; returns the weights path."""
    from safetensors.torch import save

    weights, sidecar = _paths(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    atomic_write_bytes(weights, save(tensors))
    meta = {
        "format": FORMAT,
        "world": world,
        "spec_hash": spec_hash,
        "method": method,
        "policy_config": policy.config.model_dump(),
        "obs_spec": spec_to_json(policy.obs_spec),
        "versions": versions(),
        **(extra or {}),
    }
    atomic_write_text(sidecar, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return weights


def load_policy(path: str | Path, device: str | torch.device = "cpu"
                ) -> tuple[ActorCritic, dict[str, Any]]:
    """Rebuild a policy saved by ``save_policy``; returns it with its sidecar metadata."""
    from safetensors.torch import load

    weights, sidecar = _paths(path)
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    obs_spec: ObsSpec = spec_from_json(meta["obs_spec"])
    policy = policy_from_spec(obs_spec, PolicyConfig(**meta["policy_config"]))
    policy.load_state_dict(load(weights.read_bytes()))
    return policy.to(device), meta


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically ``torch.save`` a training-state dict (optimizer, RNG states, counters)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(Path(path), map_location=device, weights_only=False)


# ====================================================================== TensorBoard
def fresh_tensorboard(run_dir: str | Path) -> Any:
    """A TensorBoard writer on ``run_dir/tb`` with no earlier events (a run that starts, or
    rebuilds its events from ``metrics.jsonl``); None when tensorboard is not installed."""
    import logging
    import shutil

    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logging.getLogger(__name__).info("tensorboard is not installed; writing "
                                         "metrics.jsonl only")
        return None
    shutil.rmtree(Path(run_dir) / "tb", ignore_errors=True)
    return SummaryWriter(str(Path(run_dir) / "tb"))


def add_scalars(tb: Any, record: dict[str, Any], prefix: str, step: int,
                skip: tuple[str, ...] = ()) -> None:
    """Every finite number of ``record`` (but ``skip``) as ``prefix/key`` at ``step``."""
    import math

    for k, v in record.items():
        if isinstance(v, int | float) and not isinstance(v, bool) and k not in skip \
                and math.isfinite(v):
            tb.add_scalar(f"{prefix}/{k}", v, step)
