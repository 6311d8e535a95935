"""Register the catalogue worlds with Gymnasium.

Every catalogue world ``<Name>`` (hand-written or generated) becomes ``autoworld/<Name>-v0``, and
``autoworld/World-v0`` makes any spec file (``spec=PATH``). Registration only reads the
catalogue's YAML files; torch, the engine and the spec models are imported when an env is made
(``autoworld.gym_env``), so ``import autoworld`` stays light.

Example:
    >>> import gymnasium, autoworld
    >>> "autoworld/DoorKey-8x8-v0" in gymnasium.registry
    True
"""

from __future__ import annotations

from pathlib import Path

NAMESPACE = "autoworld"
GENERIC_ID = f"{NAMESPACE}/World-v0"
ENTRY_POINT = "autoworld.gym_env:make_env"
VECTOR_ENTRY_POINT = "autoworld.gym_env:make_vector_env"


def env_id(name: str) -> str:
    """The Gymnasium id of catalogue world ``name``.

    Example:
        >>> env_id("DoorKey-8x8")
        'autoworld/DoorKey-8x8-v0'
    """
    return f"{NAMESPACE}/{name}-v0"


def _max_steps(path: Path) -> int | None:
    """``max_steps`` of a spec file, read without validating it (None if unreadable: the
    engine truncates at the spec's ``max_steps`` anyway, and making the env reports the error)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    value = data.get("max_steps") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def register_envs() -> list[str]:
    """Register every catalogue world and ``autoworld/World-v0``; ids already registered are
    left alone, so calling it again (or after adding worlds) is safe.

    Returns:
        The ids registered by this call.

    Example:
        >>> register_envs()  # already done by ``import autoworld``
        []
    """
    import gymnasium

    from autoworld.envs.catalogue import list_worlds, world_path

    new: list[str] = []
    for name in list_worlds():
        gid = env_id(name)
        if gid in gymnasium.registry:
            continue
        gymnasium.register(
            id=gid,
            entry_point=ENTRY_POINT,
            vector_entry_point=VECTOR_ENTRY_POINT,
            max_episode_steps=_max_steps(world_path(name)),
            kwargs={"world": name},
        )
        new.append(gid)
    from autoworld.envs.arm.registration import register_arm_worlds

    new += register_arm_worlds()  # the arm family's catalogue (reads YAML only)
    if GENERIC_ID not in gymnasium.registry:
        gymnasium.register(id=GENERIC_ID, entry_point=ENTRY_POINT,
                           vector_entry_point=VECTOR_ENTRY_POINT, kwargs={})
        new.append(GENERIC_ID)
    return new
