"""`autoworld list`: the catalogue worlds with their family, taxonomy, level counts and gym id."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from autoworld.cli.common import console, echo_json, fail, gym_id, handle_errors


def level_counts(name: str) -> dict[str, int]:
    """Levels per split that a catalogue world ships (stored bank, else the default sizes)."""
    from autoworld.envs.catalogue import levels_path
    from autoworld.envs.grid.levels import DEFAULT_SIZES

    counts = {split: DEFAULT_SIZES[split] for split in ("test", "validation")}
    path = levels_path(name)
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        splits = data.get("splits", data) if isinstance(data, dict) else {}
        for split in counts:
            if isinstance(splits.get(split), list):
                counts[split] = len(splits[split])
    return counts


def catalogue_rows() -> list[dict]:
    """One row per catalogue world (what `autoworld list --json` prints); the only place rows
    are built, so other world families append theirs here."""
    from autoworld.envs.catalogue import generated_worlds, list_worlds, load_world
    from autoworld.taxonomy import tag_list

    generated = set(generated_worlds())
    rows = []
    for name in list_worlds():
        spec = load_world(name)
        counts = level_counts(name)
        rows.append({
            "name": name,
            "family": spec.family,
            "source": "generated" if name in generated else "hand-written",
            "tags": tag_list(spec),
            "levels": counts,
            "gym_id": gym_id(name),
            "description": spec.description,
        })
    from autoworld.envs.arm.registration import arm_world_rows

    rows += [{"source": "hand-written", "description": "", **r} for r in arm_world_rows()]
    return rows


@handle_errors
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    tag: list[str] = typer.Option(
        [], "--tag", "-t", help="Only worlds with this taxonomy tag (repeatable), e.g. partial."
    ),
) -> None:
    """List the catalogue worlds (grid and arm families): family, tags, level counts and
    Gymnasium id."""
    from autoworld.taxonomy import ALL_TAGS

    all_rows = catalogue_rows()
    known = list(ALL_TAGS) + sorted({t for r in all_rows for t in r["tags"]} - set(ALL_TAGS))
    for t in tag:
        if t not in known:
            raise fail(f"--tag: unknown tag {t!r}; use one of {', '.join(known)}")
    rows = [r for r in all_rows if all(t in r["tags"] for t in tag)]
    if as_json:
        echo_json(rows)
        return
    families = sorted({r["family"] for r in rows})
    made = sum(r.get("source") == "generated" for r in rows)
    # the gym id column only where the terminal has room for it beside the others (a narrow
    # one would cut every column); every id is autoworld/<name>-v0, which the caption says
    name_width = max((len(r["name"]) for r in rows), default=4)
    # name, family, tags (13+), test/val (10) and gym id (16+), with 3 border cells each
    wide = console.width >= name_width + (9 if len(families) > 1 else 0) + 16 + 13 + 20 + 15
    ids_follow_names = all(r["gym_id"] == gym_id(r["name"]) for r in rows)
    show_ids = wide or not ids_follow_names
    table = Table(title=f"autoworld catalogue: {len(rows)} {'/'.join(families)} worlds"
                        + (f" ({made} generated)" if made else ""),
                  caption=None if show_ids else f"Gymnasium id of each: {gym_id('<name>')}",
                  caption_justify="left")
    table.add_column("name", no_wrap=True, style="bold")
    if len(families) > 1:
        table.add_column("family", no_wrap=True)
    table.add_column("tags", min_width=13)
    table.add_column("test/val", no_wrap=True, justify="right")
    if show_ids:
        table.add_column("gym id", overflow="fold", min_width=16)
    for r in rows:
        cells = [r["name"]] + ([r["family"]] if len(families) > 1 else [])
        levels = (r["levels"] if isinstance(r["levels"], str)
                  else f"{r['levels']['test']}/{r['levels']['validation']}")
        cells += [" ".join(r["tags"]), levels] + ([r["gym_id"]] if show_ids else [])
        table.add_row(*cells)
    console.print(table)
