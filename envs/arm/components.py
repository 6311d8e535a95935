"""Task components of the arm family.

A task is a set of components, each a small frozen pydantic ``Params`` model whose ``kind``
literal is its registered name and whose docstring documents it (for the CLI and LLM prompts).
The engine packs every component's parameters into per-env tensors, so worlds with different
tasks and embodiments share one batch: an env whose world lacks a component gets its neutral
``Params()`` values and the component's effects are masked off by the env's task.

========================  ====================================================
task                      components
========================  ====================================================
reach                     goal
via_point                 via_point, goal
push                      disk (mode push), goal
pick_place                disk (mode carry), goal
reach_around              obstacle, goal
wipe                      wipe_region
dwell_slow                dwell, goal
========================  ====================================================

Every task may add ``distractors`` (inert disks drawn in the scene).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoworld.errors import SpecError


class ArmComponentParams(BaseModel):
    """Base of every arm component's parameters: frozen, no extra fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class GoalParams(ArmComponentParams):
    """Goal region: a disk of ``radius`` the end-effector (or the object) must reach."""

    kind: Literal["goal"] = "goal"
    radius: float = Field(0.05, ge=0.01, le=0.2, description="Goal region radius (m).")


class ViaPointParams(ArmComponentParams):
    """Via point: the end-effector must pass within ``radius`` of it before the goal counts."""

    kind: Literal["via_point"] = "via_point"
    radius: float = Field(0.05, ge=0.01, le=0.2, description="Via region radius (m).")


class DiskParams(ArmComponentParams):
    """A disk on the table. ``push``: the end-effector shoves it (kinematic contact);
    ``carry``: the magnet picks it up within ``grab_radius`` and drops it when switched off."""

    kind: Literal["disk"] = "disk"
    mode: Literal["push", "carry"] = Field("push", description="How the disk is moved.")
    radius: float = Field(0.04, ge=0.01, le=0.1, description="Disk radius (m).")
    grab_radius: float = Field(0.04, ge=0.01, le=0.1, description="Magnet pick-up distance.")


class ObstacleParams(ArmComponentParams):
    """An obstacle disk on the straight line from the start to the goal; the end-effector
    (the tool, which works at table height) may not enter it, while the links pass above it.
    A blocked move is rejected and costs ``penalty``."""

    kind: Literal["obstacle"] = "obstacle"
    radius_lo: float = Field(0.07, ge=0.02, le=0.2, description="Smallest obstacle radius.")
    radius_hi: float = Field(0.10, ge=0.02, le=0.2, description="Largest obstacle radius.")
    penalty: float = Field(0.05, ge=0.0, le=1.0, description="Reward lost per blocked move.")

    @model_validator(mode="after")
    def _order(self) -> ObstacleParams:
        if self.radius_lo > self.radius_hi:
            raise SpecError("radius_lo must not exceed radius_hi", field="obstacle.radius_lo")
        return self


class WipeRegionParams(ArmComponentParams):
    """A square region split into ``cells`` x ``cells``; a cell is wiped when the end-effector
    comes within ``brush`` (times the cell size) of its centre; success when all are wiped."""

    kind: Literal["wipe_region"] = "wipe_region"
    half_lo: float = Field(0.08, ge=0.03, le=0.2, description="Smallest half side (m).")
    half_hi: float = Field(0.11, ge=0.03, le=0.2, description="Largest half side (m).")
    cells: Literal[3] = Field(3, description="Cells per side (3: nine cells).")
    brush: float = Field(0.6, ge=0.3, le=1.0, description="Brush radius in cell sizes.")

    @model_validator(mode="after")
    def _order(self) -> WipeRegionParams:
        if self.half_lo > self.half_hi:
            raise SpecError("half_lo must not exceed half_hi", field="wipe_region.half_lo")
        return self


class DwellParams(ArmComponentParams):
    """Pouring analogue: reach the pour point, hold within its radius for ``steps`` steps, then
    carry to the goal never faster than ``slow_speed`` per step (faster spills: the episode
    ends unsuccessfully with reward -1)."""

    kind: Literal["dwell"] = "dwell"
    radius: float = Field(0.05, ge=0.01, le=0.2, description="Pour point radius (m).")
    steps: int = Field(10, ge=1, le=100, description="Steps to hold at the pour point.")
    slow_speed: float = Field(0.012, ge=0.002, le=0.1,
                              description="Fastest end-effector step in the slow phase (m).")


class DistractorParams(ArmComponentParams):
    """Inert disks placed in the workspace (drawn; not observed; no contact)."""

    kind: Literal["distractors"] = "distractors"
    count: int = Field(1, ge=0, le=3, description="Number of distractor disks (train split).")


COMPONENTS: dict[str, type[ArmComponentParams]] = {
    c.model_fields["kind"].default: c
    for c in (GoalParams, ViaPointParams, DiskParams, ObstacleParams, WipeRegionParams,
              DwellParams, DistractorParams)
}

TASK_COMPONENTS: dict[str, tuple[str, ...]] = {
    "reach": ("goal",),
    "via_point": ("via_point", "goal"),
    "push": ("disk", "goal"),
    "pick_place": ("disk", "goal"),
    "reach_around": ("obstacle", "goal"),
    "wipe": ("wipe_region",),
    "dwell_slow": ("dwell", "goal"),
}
OPTIONAL_COMPONENTS = ("distractors",)


def default_components(task: str) -> list[ArmComponentParams]:
    """The task's components with default parameters (the disk's mode follows the task)."""
    if task not in TASK_COMPONENTS:
        raise SpecError(f"unknown task {task!r}; use one of {sorted(TASK_COMPONENTS)}",
                        field="task")
    out: list[ArmComponentParams] = []
    for kind in TASK_COMPONENTS[task]:
        if kind == "disk":
            out.append(DiskParams(mode="carry" if task == "pick_place" else "push"))
        else:
            out.append(COMPONENTS[kind]())
    out.append(DistractorParams())
    return out


def describe_components() -> dict[str, str]:
    """One line per component kind: its documentation."""
    return {k: " ".join((c.__doc__ or "").split()) for k, c in COMPONENTS.items()}
