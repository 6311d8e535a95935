"""`autoworld show`: one level of a world as coloured ASCII in the terminal, PNG on request."""

from __future__ import annotations

from pathlib import Path

import typer

from autoworld.cli.common import (
    build_level_engine,
    check_split,
    coloured_ascii,
    console,
    fail,
    grid_world_arg,
    handle_errors,
    level_legend,
)


def get_level(spec, split: str, index: int):
    """Level ``index`` of ``split``: the level the world's bank serves at that index (read from
    the catalogue's stored bank when there is one, else generated)."""
    from autoworld.envs.grid import levels

    if index < 0:
        raise fail(f"--level: must be >= 0 (got {index})")
    stored = levels.catalogue_levels_path(spec).is_file()
    if stored and split in levels.CATALOGUE_SPLITS and index < levels.DEFAULT_SIZES[split]:
        return levels.bank(spec, split).level(index)
    return levels.generate_level(spec, split, index)


@handle_errors
def show_command(
    world: str = typer.Argument(..., help="Catalogue world name or spec file (.yaml/.json)."),
    level: int = typer.Option(0, "--level", "-l", help="Level index within the split."),
    split: str = typer.Option("test", "--split", "-s", help="test, validation or train."),
    png: Path | None = typer.Option(None, "--png", help="Also save the level as a PNG file."),
    tile: int = typer.Option(16, "--tile", min=4, max=64, help="PNG pixels per cell."),
) -> None:
    """Show a level of WORLD: coloured ASCII in the terminal, and a PNG with --png."""
    from autoworld.envs.grid.render import render_ascii, render_rgb, save_png
    from autoworld.taxonomy import tag_list

    spec = grid_world_arg(world, "show")
    check_split(split)
    lv = get_level(spec, split, level)
    engine = build_level_engine(spec, lv)
    text = render_ascii(engine, 0)
    from autoworld.envs.grid import levels

    size = levels.DEFAULT_SIZES.get(split)
    beyond = (f"  [yellow](past the {size} levels of its {split} bank: generated the same "
              "way, never scored)[/yellow]" if size is not None and level >= size else "")
    console.print(f"[bold]{spec.name}[/bold]  {split} level {level} (seed {lv.seed})  "
                  f"{spec.height}x{spec.width}{beyond}", soft_wrap=True)
    console.print(f"[dim]{' '.join(tag_list(spec))}[/dim]")
    console.print(coloured_ascii(text))
    console.print(f"[dim]{level_legend(text)}[/dim]")
    if png is not None:
        if png.is_dir():
            raise IsADirectoryError(21, "is a directory, give a file name", str(png))
        png.parent.mkdir(parents=True, exist_ok=True)
        save_png(render_rgb(engine, 0, tile=tile), png)
        console.print(f"saved {png}")
