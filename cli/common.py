"""What the CLI commands share: consoles, the error handler, world lookup and coloured ASCII."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from autoworld.errors import AutoworldError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def live_display(renderable: Any) -> Iterator[Any]:
    """A rich ``Live`` view of ``renderable`` on the console that stays on screen. Piped or
    logged output gets its last frame once, ended by a newline (rich ends it only on a
    terminal, so the next line would follow the table's last border)."""
    from rich.live import Live

    with Live(renderable, console=console, refresh_per_second=4, transient=False) as live:
        yield live
    if not console.is_terminal:
        console.line()


# Exit codes: 1 an invalid spec (validate), 2 bad input (unknown world, bad path, bad option).
EXIT_INVALID = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``message`` as one red line on stderr; return the Exit to raise."""
    err_console.print(Text(f"error: {message}", style="bold red"), soft_wrap=True)
    return typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn autoworld's typed errors and bad paths into one red line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AutoworldError as exc:
            raise fail(str(exc)) from None
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError,
                PermissionError) as exc:
            name = exc.filename if exc.filename is not None else ""
            hint = {FileExistsError: "a file is in the way of a folder",
                    NotADirectoryError: "a file is in the way of a folder"}.get(
                type(exc), "check the path")
            raise fail(f"{name}: {exc.strerror or exc}; {hint}") from None

    return wrapper  # type: ignore[return-value]


def check_device(name: str) -> str:
    """``--device`` checked before any work: a name torch knows, on a device this machine has
    (a bad one used to surface as a torch traceback, or as every bench cell failing)."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise fail(f"--device: unknown device {name!r}; use cpu or cuda") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise fail(f"--device {name}: CUDA is not available on this machine; use --device "
                       "cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise fail(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA "
                       "device(s)")
    elif device.type != "cpu":
        raise fail(f"--device {name}: autoworld runs on cpu or cuda")
    return name


def echo_json(data: Any) -> None:
    """Plain JSON on stdout (no colours, no wrapping), for pipes and scripts."""
    typer.echo(json.dumps(data, indent=2, sort_keys=False))


def grid_world_arg(world: str, command: str):
    """``load_world_arg`` for a command that works on grid worlds only: an arm world is a clear
    error saying what to do with it instead."""
    spec = load_world_arg(world)
    if getattr(spec, "family", "grid") != "grid":
        raise fail(f"{spec.name} is an arm world; `autoworld {command}` works on grid worlds "
                   f"(arm worlds train with the arm methods, e.g. `autoworld train {spec.name} "
                   "--method arm-ppo`)")
    return spec


def is_arm_world_arg(world: str) -> bool:
    """Whether a WORLD argument names an arm world: a spec file by its declared ``family``
    (whatever its file name), a name by its ``Arm`` prefix (arm catalogue names, Arm<Task>-armN)."""
    family = spec_family(world)
    if family is not None:
        return family == "arm"
    return world.startswith("Arm") and Path(world).suffix not in (".yaml", ".yml", ".json")


def spec_family(path: str) -> str | None:
    """The ``family`` a spec file declares (``grid`` when it names none); None when ``path`` is
    not a readable .yaml/.yml/.json mapping (the loaders then say what is wrong)."""
    p = Path(path)
    if p.suffix not in (".yaml", ".yml", ".json") or not p.is_file():
        return None
    import yaml

    from autoworld.spec import _yaml_load  # the spec loader's (safe, C) reader

    try:
        data = _yaml_load(p.read_text(encoding="utf-8"))  # JSON is YAML too
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None
    return str(data.get("family", "grid")) if isinstance(data, dict) else None


def load_world_arg(world: str):
    """A catalogue world by name or a spec file by path; a missing file is a clear error."""
    from autoworld.envs.catalogue import list_worlds, load_world
    from autoworld.errors import CatalogueError

    if world not in list_worlds() and is_arm_world_arg(world):
        from autoworld.learners.arm_methods import arm_world_arg

        return arm_world_arg(world)  # ArmReach-N3 (arm catalogue), ArmReach-arm3, an arm file
    if world not in list_worlds():
        p = Path(world)
        if p.suffix in (".yaml", ".yml", ".json") and not p.is_file():
            raise CatalogueError(f"no such spec file: {world}; give a catalogue name (see "
                                 "`autoworld list`) or an existing .yaml/.json spec")
    return load_world(world)


def gym_id(name: str) -> str:
    return f"autoworld/{name}-v0"


def _char_styles() -> dict[str, str]:
    from autoworld.envs.grid.symbols import CHARS, COLORS, Cell

    styles: dict[str, str] = {}
    for cell, ch in CHARS.items():
        if ch.strip() and ch not in styles:
            r, g, b = COLORS[cell]
            styles[ch] = f"rgb({r},{g},{b})"
    for ch in "^>v<":
        styles[ch] = "bold red"
    styles[CHARS[Cell.EMPTY]] = "grey35"
    styles[CHARS[Cell.WALL]] = "grey62"
    return styles


def coloured_ascii(text: str) -> Text:
    """Rich text of an ASCII level/frame, each symbol in its tile colour."""
    styles = _char_styles()
    out = Text()
    for ch in text:
        out.append(ch, style=styles.get(ch, ""))
    return out


def level_legend(text: str) -> str:
    """A one-line legend of the symbols that occur in ``text``."""
    from autoworld.envs.grid.symbols import CHARS

    names = {}
    for cell, ch in CHARS.items():
        if ch.strip() and ch not in names:
            names[ch] = cell.name.lower()
    for ch, label in (("^", "agent"), (">", "agent"), ("v", "agent"), ("<", "agent")):
        names[ch] = label
    seen: list[str] = []
    for ch in text:
        if ch in names and ch not in seen:
            seen.append(ch)
    parts: dict[str, str] = {}
    for ch in seen:
        label = names[ch]
        parts[label] = parts.get(label, "") + ch
    return "  ".join(f"{chars} {label}" for label, chars in parts.items())


def build_level_engine(spec, level, device: str = "cpu"):
    """A one-env engine whose only level is ``level``, reset onto it."""
    from autoworld.envs.grid.engine import GridEngine
    from autoworld.envs.grid.level import LevelBank

    engine = GridEngine(spec, num_envs=1, device=device, seed=0,
                        banks=[LevelBank.from_levels([level])])
    engine.reset(level_ids=[0])
    return engine


def check_split(split: str) -> str:
    from autoworld.envs.grid.levels import SPLITS

    if split not in SPLITS:
        raise fail(f"--split: unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return split
