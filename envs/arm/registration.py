"""Gymnasium registration and catalogue rows of the arm worlds.

Every YAML spec in ``envs/arm/catalogue/`` becomes ``autoworld/<Name>-v0`` (names follow
``Arm<Task>-N<joints>``), and ``autoworld/ArmWorld-v0`` makes any arm spec file
(``spec=PATH``). Registration reads only the YAML files.

Example:
    >>> ids = register_arm_worlds()
    >>> import gymnasium
    >>> "autoworld/ArmReach-N3-v0" in gymnasium.registry
    True
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from autoworld.errors import CatalogueError

NAMESPACE = "autoworld"
ARM_CATALOGUE_DIR = Path(__file__).resolve().parent / "catalogue"
GENERIC_ARM_ID = f"{NAMESPACE}/ArmWorld-v0"
ENTRY_POINT = "autoworld.envs.arm.gym_env:make_arm_env"
VECTOR_ENTRY_POINT = "autoworld.envs.arm.gym_env:make_arm_vector_env"


def arm_env_id(name: str) -> str:
    """The Gymnasium id of arm catalogue world ``name``."""
    return f"{NAMESPACE}/{name}-v0"


def list_arm_worlds() -> list[str]:
    """Names of the arm catalogue worlds, sorted."""
    return sorted(p.stem for p in ARM_CATALOGUE_DIR.glob("*.yaml"))


@cache
def load_arm_world(name: str):
    """An arm catalogue world by name (or any arm spec file by path)."""
    from autoworld.envs.arm.spec import load_arm_spec

    if name in list_arm_worlds():
        return load_arm_spec(ARM_CATALOGUE_DIR / f"{name}.yaml")
    if Path(name).suffix in (".yaml", ".yml", ".json"):
        return load_arm_spec(name)
    close = [n for n in list_arm_worlds() if name.lower() in n.lower()]
    hint = f"; did you mean {', '.join(close[:3])}?" if close else "; see `autoworld list`"
    raise CatalogueError(f"unknown arm world {name!r}{hint}")


def _read(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def register_arm_worlds() -> list[str]:
    """Register every arm catalogue world and ``autoworld/ArmWorld-v0``; ids already
    registered are left alone. Returns the ids registered by this call."""
    import gymnasium

    new: list[str] = []
    for name in list_arm_worlds():
        gid = arm_env_id(name)
        if gid in gymnasium.registry:
            continue
        steps = _read(ARM_CATALOGUE_DIR / f"{name}.yaml").get("max_steps")
        gymnasium.register(id=gid, entry_point=ENTRY_POINT,
                           vector_entry_point=VECTOR_ENTRY_POINT,
                           max_episode_steps=steps if isinstance(steps, int) else None,
                           kwargs={"world": name})
        new.append(gid)
    if GENERIC_ARM_ID not in gymnasium.registry:
        gymnasium.register(id=GENERIC_ARM_ID, entry_point=ENTRY_POINT,
                           vector_entry_point=VECTOR_ENTRY_POINT, kwargs={})
        new.append(GENERIC_ARM_ID)
    return new


def arm_world_rows() -> list[dict]:
    """One row per arm catalogue world for ``autoworld list``: name, family, tags, levels
    ("procedural": scenes are generated from seeds), gym_id."""
    rows = []
    for name in list_arm_worlds():
        data = _read(ARM_CATALOGUE_DIR / f"{name}.yaml")
        emb = data.get("embodiment", "")
        emb_name = emb if isinstance(emb, str) else emb.get("name", "inline")
        tags = ["arm", str(data.get("task", "?")), str(emb_name),
                str(data.get("interface", "ee_delta")), "continuous"]
        rows.append({"name": name, "family": "arm", "tags": tags, "levels": "procedural",
                     "gym_id": arm_env_id(name)})
    return rows
