"""The ``arm`` family: planar serial arms (2 to 7 links) on a table, batched in torch.

Embodiments (``embodiment``), world specs and task components (``spec``, ``components``), the
batched engine (``engine``), scripted experts and demonstration datasets (``experts``,
``demos``), spec validation (``validation``), rendering (``render``) and Gymnasium adapters
(``gym_env``, ``registration``). Names are imported lazily, so that registering the arm worlds
(``registration``) does not import torch.

Example:
    >>> from autoworld.envs.arm import ArmEngine, arm_world
    >>> ArmEngine(arm_world("reach", "arm3"), num_envs=2).action_dim
    3
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "N_MAX": "embodiment", "JOINT_DESC_DIM": "embodiment", "Embodiment": "embodiment",
    "standard_embodiments": "embodiment",
    "TASKS": "spec", "ArmWorldSpec": "spec", "arm_world": "spec", "load_arm_spec": "spec",
    "TASK_DIM": "engine", "ArmEngine": "engine",
    "Operator": "experts", "ScriptedExpert": "experts", "standard_operators": "experts",
    "DemoSet": "demos", "collect_demos": "demos",
    "validate_arm_spec": "validation",
    "register_arm_worlds": "registration", "arm_world_rows": "registration",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'autoworld.envs.arm' has no attribute {name!r}")
    return getattr(importlib.import_module(f"autoworld.envs.arm.{_EXPORTS[name]}"), name)
