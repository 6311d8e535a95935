"""The built-in catalogue: hand-written world specs (``*.yaml``) and their level banks
(``levels/<Name>.json``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from autoworld.errors import CatalogueError

CATALOGUE_DIR = Path(__file__).resolve().parent
LEVELS_DIR = CATALOGUE_DIR / "levels"


def list_worlds() -> list[str]:
    """Names of the catalogue worlds, sorted."""
    return sorted(p.stem for p in CATALOGUE_DIR.glob("*.yaml"))


@cache
def _load_named(name: str):
    from autoworld.spec import load_spec

    return load_spec(CATALOGUE_DIR / f"{name}.yaml")


def load_world(name_or_path: str):
    """A catalogue world by name, or any spec file by path (.yaml/.yml/.json)."""
    from autoworld.spec import load_spec

    if name_or_path in list_worlds():
        return _load_named(name_or_path)
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml", ".json"):
        return load_spec(p)
    names = list_worlds()
    close = [n for n in names if name_or_path.lower() in n.lower()]
    hint = f"; did you mean {', '.join(close[:3])}?" if close else "; see `autoworld list`"
    raise CatalogueError(f"unknown world {name_or_path!r}{hint}")
