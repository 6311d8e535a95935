"""WorldSpec of the arm family: a frozen pydantic model that fully determines an arm world.

A world is a task (built from components, see ``components``), an embodiment (a standard name
or an inline arm), an action interface, an episode length and the scene generator's parameters.

Example:
    >>> spec = arm_world("reach_around", "arm4")
    >>> spec.name, spec.interface, [c.kind for c in spec.components]
    ('ArmReachAround-N4', 'ee_delta', ['obstacle', 'goal', 'distractors'])
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from autoworld.envs.arm.components import (
    COMPONENTS,
    OPTIONAL_COMPONENTS,
    TASK_COMPONENTS,
    default_components,
)
from autoworld.envs.arm.embodiment import N_MAX, Embodiment, get_embodiment
from autoworld.errors import SpecError

TASKS = ("reach", "via_point", "push", "pick_place", "reach_around", "wipe", "dwell_slow")
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$"
DEFAULT_MAX_STEPS = {"reach": 200, "via_point": 350, "push": 300, "pick_place": 350,
                     "reach_around": 250, "wipe": 300, "dwell_slow": 300}

TASK_DESCRIPTIONS = {
    "reach": "Move the end-effector into the goal region.",
    "via_point": "Pass through the via point, then reach the goal.",
    "push": "Push the disk into the goal region with the end-effector.",
    "pick_place": "Pick the disk up with the magnet and drop it in the goal region.",
    "reach_around": "Reach the goal without touching the obstacle between start and goal.",
    "wipe": "Wipe every cell of the square region.",
    "dwell_slow": "Hold at the pour point, then carry slowly to the goal without spilling.",
}

ArmComponent = Annotated[Union[tuple(COMPONENTS.values())],  # noqa: UP007
                         Field(discriminator="kind")]


class EmbodimentSpec(BaseModel):
    """An inline embodiment (instead of a standard name)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(..., pattern=NAME_PATTERN, description="Embodiment name.")
    link_lengths: tuple[float, ...] = Field(..., min_length=2, max_length=N_MAX,
                                            description="Link lengths (m), 2 to 7 links.")
    joint_limits: tuple[tuple[float, float], ...] = Field(
        ..., description="(lo, hi) radians per joint, lo < 0 < hi.")
    vel_limits: tuple[float, ...] = Field(..., description="Radians per step, per joint.")
    gripper: bool = Field(True, description="Magnetic gripper on the end-effector.")

    @model_validator(mode="after")
    def _check(self) -> EmbodimentSpec:
        self.to_embodiment()  # raises SpecError naming the field
        return self

    def to_embodiment(self) -> Embodiment:
        return Embodiment(self.name, self.link_lengths, self.joint_limits, self.vel_limits,
                          self.gripper)


class SceneParams(BaseModel):
    """Where the scene generator places things (polar coordinates around the arm's base).

    Train scenes put targets at angles in ``[-sector, sector]``; held-out shifted scenes
    (``split="shifted"``) put them at ``sector < |angle| <= sector + shift_sector``, scale
    obstacles and wipe regions by ``shift_scale`` and add one distractor.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    radius_lo: float = Field(0.45, ge=0.0, le=2.0, description="Nearest target radius (m).")
    radius_hi: float = Field(0.8, ge=0.05, le=2.0, description="Farthest target radius (m).")
    sector: float = Field(1.3, ge=0.1, le=2.5, description="Half-angle of train targets.")
    shift_sector: float = Field(0.5, ge=0.05, le=1.0,
                                description="Extra half-angle of shifted targets.")
    shift_scale: float = Field(1.25, ge=1.0, le=2.0,
                               description="Obstacle / region size factor in shifted scenes.")
    home_jitter: float = Field(0.1, ge=0.0, le=0.5, description="Start pose jitter (rad).")

    @model_validator(mode="after")
    def _order(self) -> SceneParams:
        if self.radius_lo >= self.radius_hi:
            raise SpecError("radius_lo must be below radius_hi", field="scene.radius_lo")
        if self.sector + self.shift_sector > 2.4:
            raise SpecError("sector + shift_sector must stay <= 2.4 rad so that every target "
                            "is reachable without crossing the base joint's +-pi limit",
                            field="scene.shift_sector")
        return self


class ArmWorldSpec(BaseModel):
    """An arm world: task, embodiment, action interface, episode length and scene."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: Literal["arm"] = Field("arm", description="World family.")
    name: str = Field(..., pattern=NAME_PATTERN, description="World name (letters, digits, _.-).")
    description: str = Field("", max_length=500, description="One or two sentences for people.")
    task: Literal[TASKS] = Field(..., description="Task (see autoworld.envs.arm.components).")
    embodiment: str | EmbodimentSpec = Field(
        "arm3", description="A standard embodiment name (arm2..arm7, variants) or an inline arm.")
    interface: Literal["ee_delta", "joint_velocity"] = Field(
        "ee_delta", description="Action interface: end-effector deltas through damped "
        "least-squares IK, or joint velocities padded to N_MAX.")
    max_steps: int = Field(200, ge=1, le=2000, description="Steps before truncation.")
    max_ee_step: float = Field(0.04, ge=0.005, le=0.2,
                               description="End-effector step of a unit ee_delta action (m).")
    ik_damping: float = Field(0.05, ge=0.001, le=1.0,
                              description="Damping lambda of the least-squares IK.")
    success_bonus: float = Field(1.0, ge=0.0, le=10.0, description="Reward on success.")
    shaping: float = Field(1.0, ge=0.0, le=10.0,
                           description="Scale of the potential-based progress reward.")
    scene: SceneParams = Field(default_factory=SceneParams, description="Scene generator.")
    components: list[ArmComponent] = Field(  # type: ignore[valid-type]
        ..., min_length=1, max_length=8, description="The task's components (see TASK_COMPONENTS).")

    @model_validator(mode="after")
    def _check_components(self) -> ArmWorldSpec:
        kinds = [c.kind for c in self.components]
        if len(set(kinds)) != len(kinds):
            raise SpecError(f"duplicate component kinds {kinds}; give each at most once",
                            field="components")
        need = set(TASK_COMPONENTS[self.task])
        missing = need - set(kinds)
        extra = set(kinds) - need - set(OPTIONAL_COMPONENTS)
        if missing or extra:
            raise SpecError(f"task {self.task!r} takes components {sorted(need)} (optional: "
                            f"{list(OPTIONAL_COMPONENTS)}); missing {sorted(missing)}, "
                            f"not allowed {sorted(extra)}", field="components")
        disk = self.component("disk")
        if disk is not None:
            want = "carry" if self.task == "pick_place" else "push"
            if disk.mode != want:
                raise SpecError(f"task {self.task!r} needs disk mode {want!r}",
                                field="components.disk.mode")
        arm = self.arm
        if self.task == "pick_place" and not arm.gripper:
            raise SpecError(f"pick_place needs a magnetic gripper; embodiment {arm.name!r} "
                            "has none (pick another arm or task)", field="embodiment")
        if self.scene.radius_hi >= arm.reach:
            raise SpecError(f"scene.radius_hi {self.scene.radius_hi} must be below the arm's "
                            f"reach {arm.reach:.3f}", field="scene.radius_hi")
        return self

    @property
    def arm(self) -> Embodiment:
        """The embodiment object."""
        if isinstance(self.embodiment, EmbodimentSpec):
            return self.embodiment.to_embodiment()
        return get_embodiment(self.embodiment)

    def component(self, kind: str) -> Any | None:
        """The component of kind ``kind``, or None."""
        for c in self.components:
            if c.kind == kind:
                return c
        return None

    def canonical_json(self) -> str:
        """Sorted-key JSON of every field (defaults included): the basis of the id."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def content_hash(self) -> str:
        """16 hex digits identifying the world's content."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]


def _camel(task: str) -> str:
    return "".join(p.capitalize() for p in task.split("_"))


def default_name(task: str, arm: Embodiment) -> str:
    """``Arm<Task>-N<k>`` for the standard ``arm<k>``, ``Arm<Task>-<arm name>`` otherwise."""
    suffix = f"N{arm.n_joints}" if arm.name == f"arm{arm.n_joints}" else arm.name
    return f"Arm{_camel(task)}-{suffix}"


def arm_world(task: str, embodiment: str | Embodiment = "arm3", **overrides: Any) -> ArmWorldSpec:
    """A spec for ``task`` on ``embodiment`` with default components; ``overrides`` replace
    top-level fields (``name``, ``interface``, ``max_steps``, ``scene`` ...).

    Example:
        >>> arm_world("reach", "arm2", interface="joint_velocity").max_steps
        200
    """
    if task not in TASKS:
        raise SpecError(f"unknown task {task!r}; use one of {list(TASKS)}", field="task")
    if isinstance(embodiment, Embodiment):
        arm = embodiment
        emb: Any = EmbodimentSpec(name=arm.name, link_lengths=arm.link_lengths,
                                  joint_limits=arm.joint_limits, vel_limits=arm.vel_limits,
                                  gripper=arm.gripper)
    else:
        arm = get_embodiment(embodiment)
        emb = embodiment
    data: dict[str, Any] = {
        "name": default_name(task, arm),
        "task": task,
        "description": f"{TASK_DESCRIPTIONS[task]} Arm: {arm.name} ({arm.n_joints} joints).",
        "embodiment": emb,
        "max_steps": DEFAULT_MAX_STEPS[task],
        "components": default_components(task),
    }
    if arm.reach < 0.99:  # shorter arms: keep targets inside their workspace
        data["scene"] = SceneParams(radius_lo=0.45 * arm.reach, radius_hi=0.8 * arm.reach)
    data.update(overrides)
    try:
        return ArmWorldSpec(**data)
    except ValidationError as e:
        err = e.errors()[0]
        raise SpecError(err["msg"], field=".".join(map(str, err["loc"])) or None) from None


def load_arm_spec(path) -> ArmWorldSpec:
    """An arm spec from a YAML or JSON file (errors name the field)."""
    from pathlib import Path

    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise SpecError(f"cannot read {p}: {e}", field="path") from None
    if not isinstance(data, dict):
        raise SpecError(f"{p} must hold a mapping of spec fields", field="path")
    try:
        return ArmWorldSpec(**data)
    except ValidationError as e:
        err = e.errors()[0]
        raise SpecError(f"{p}: {err['msg']}", field=".".join(map(str, err["loc"])) or None) \
            from None


def spec_to_yaml(spec: ArmWorldSpec) -> str:
    """The spec as YAML (round-trips through ``load_arm_spec``)."""
    import yaml

    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


