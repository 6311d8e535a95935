"""`autoworld play`: play a level with the keyboard in the terminal.

Keys: turn_forward worlds: ``a``/``d`` turn left/right, ``w`` forward; cardinal worlds:
``w``/``a``/``s``/``d`` move north/west/south/east. Both: ``p`` pick up, ``o`` drop, ``t`` toggle,
``q`` quit. On a terminal each key press acts at once; from a pipe, each character read acts
(one key per line works), so a session can be scripted: ``printf 'w\\nd\\nq\\n' | autoworld play``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import torch
import typer
from rich.text import Text

from autoworld.cli.common import (
    build_level_engine,
    check_split,
    coloured_ascii,
    console,
    grid_world_arg,
    handle_errors,
)
from autoworld.cli.show import get_level

TURN_FORWARD_KEYS = {"a": (0, "turn left"), "d": (1, "turn right"), "w": (2, "forward"),
                     "p": (3, "pick up"), "o": (4, "drop"), "t": (5, "toggle")}
CARDINAL_KEYS = {"d": (0, "east"), "s": (1, "south"), "a": (2, "west"), "w": (3, "north"),
                 "p": (4, "pick up"), "o": (5, "drop"), "t": (6, "toggle")}


def keymap_for(spec) -> dict[str, tuple[int, str]]:
    """Key -> (action, label) for the world's movement scheme."""
    return TURN_FORWARD_KEYS if spec.component("turn_forward") is not None else CARDINAL_KEYS


def _raw_keys() -> Iterator[str]:
    """Single key presses from a terminal, without waiting for Enter (POSIX; else lines)."""
    try:
        import termios
        import tty
    except ImportError:  # Windows: msvcrt reads one key at a time
        import msvcrt  # type: ignore[import-not-found]

        while True:
            yield msvcrt.getwch()
    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    tty.setcbreak(fd, termios.TCSANOW)  # TCSANOW: keys typed ahead are kept, not flushed
    try:
        while True:
            ch = sys.stdin.read(1)
            if not ch:
                return
            yield ch
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def _piped_keys() -> Iterator[str]:
    """Keys from a pipe or file: every non-blank character of every line, in order."""
    for line in sys.stdin:
        yield from line.strip()


def _view_text(image: torch.Tensor) -> str:
    from autoworld.envs.grid.render import symbols_to_ascii

    return symbols_to_ascii(image.cpu().numpy())


@handle_errors
def play_command(
    world: str = typer.Argument(..., help="Catalogue world name or spec file (.yaml/.json)."),
    level: int = typer.Option(0, "--level", "-l", help="Level index within the split."),
    split: str = typer.Option("test", "--split", "-s", help="test, validation or train."),
) -> None:
    """Play a level of WORLD with the keyboard (keys are listed on screen; q quits)."""
    from autoworld.envs.grid.render import render_ascii
    from autoworld.taxonomy import tags

    spec = grid_world_arg(world, "play")
    check_split(split)
    engine = build_level_engine(spec, get_level(spec, split, level))
    keys = keymap_for(spec)
    partial = tags(spec)["observation"] == "partial"
    interactive = sys.stdin.isatty()
    help_line = "  ".join(f"{k} {label}" for k, (_, label) in keys.items()) + "  q quit"
    status = "new episode"
    episode_return, steps, episodes = 0.0, 0, 0

    def draw() -> None:
        if interactive:
            console.clear()
        console.print(f"[bold]{spec.name}[/bold]  {split} level {level}  step {steps}  "
                      f"return {episode_return:.3f}")
        console.print(coloured_ascii(render_ascii(engine, 0)))
        if partial:
            console.print("[dim]agent's view:[/dim]")
            console.print(coloured_ascii(_view_text(engine.observe(engine.state)["image"][0])))
        console.print(Text(status))
        console.print(f"[dim]{help_line}[/dim]")

    draw()
    try:
        for key in _raw_keys() if interactive else _piped_keys():
            if key.lower() == "q":
                break
            if key.lower() not in keys:
                status = f"unknown key {key!r}"
                draw()
                continue
            action, label = keys[key.lower()]
            _, reward, terminated, truncated, _ = engine.step(torch.tensor([action]))
            r = float(reward[0])
            episode_return += r
            steps += 1
            status = f"{label}: reward {r:+.3f}"
            if bool(terminated[0]) or bool(truncated[0]):
                why = "terminated" if bool(terminated[0]) else "truncated (time limit)"
                status += (f"  episode done: {why}, return {episode_return:.3f}; "
                           "new episode started")
                episodes += 1
                episode_return, steps = 0.0, 0
            draw()
    except KeyboardInterrupt:  # Ctrl-C quits like q
        pass
    console.print(f"bye ({episodes} episode(s) finished)")
