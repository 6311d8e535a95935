"""The built-in catalogue: hand-written world specs (``*.yaml``, level banks in
``levels/<Name>.json``) and the generated worlds (``generated/*.yaml``, level banks in
``generated/levels/<Name>.json``), built by the procedural generator from ``themes.txt``
(``python -m autoworld.generator.catalogue --rebuild``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from autoworld.errors import CatalogueError

CATALOGUE_DIR = Path(__file__).resolve().parent
LEVELS_DIR = CATALOGUE_DIR / "levels"
GENERATED_DIR = CATALOGUE_DIR / "generated"
GENERATED_LEVELS_DIR = GENERATED_DIR / "levels"
THEMES_FILE = CATALOGUE_DIR / "themes.txt"


def handwritten_worlds() -> list[str]:
    """Names of the hand-written catalogue worlds, sorted."""
    return sorted(p.stem for p in CATALOGUE_DIR.glob("*.yaml"))


def generated_worlds() -> list[str]:
    """Names of the generated catalogue worlds, sorted."""
    return sorted(p.stem for p in GENERATED_DIR.glob("*.yaml"))


def list_worlds(generated: bool = True) -> list[str]:
    """Names of the catalogue worlds, sorted: the hand-written ones first, then (unless
    ``generated`` is false) the generated ones."""
    return handwritten_worlds() + (generated_worlds() if generated else [])


def world_path(name: str) -> Path:
    """The spec file of catalogue world ``name``."""
    for folder in (CATALOGUE_DIR, GENERATED_DIR):
        path = folder / f"{name}.yaml"
        if path.is_file():
            return path
    raise CatalogueError(f"unknown world {name!r}; see `autoworld list`")


def levels_path(name: str) -> Path:
    """The level-bank file of catalogue world ``name`` (it may not exist yet)."""
    if (GENERATED_DIR / f"{name}.yaml").is_file():
        return GENERATED_LEVELS_DIR / f"{name}.json"
    return LEVELS_DIR / f"{name}.json"


@cache
def _load_named(name: str):
    from autoworld.spec import load_spec

    return load_spec(world_path(name))


def load_world(name_or_path: str):
    """A catalogue world by name, or any spec file by path (.yaml/.yml/.json)."""
    from autoworld.spec import load_spec

    names = list_worlds()
    if name_or_path in names:
        return _load_named(name_or_path)
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml", ".json"):
        return load_spec(p)
    close = [n for n in names if name_or_path.lower() in n.lower()]
    hint = f"; did you mean {', '.join(close[:3])}?" if close else "; see `autoworld list`"
    raise CatalogueError(f"unknown world {name_or_path!r}{hint}")
