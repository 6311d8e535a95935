"""`autoworld methods`: the registered learning methods (Selection x Optimization x Component)."""

from __future__ import annotations

import json

import typer


def methods_command(
    as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON."),
) -> None:
    """List the learning methods: what each selects, optimizes and changes."""
    from autoworld.learners.methods import METHODS

    rows = [METHODS[name].row() for name in sorted(METHODS)]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} learning methods")
    for col in ("name", "selection", "optimization", "component", "description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["selection"], r["optimization"], r["component"],
                      r["description"])
    Console(width=160).print(table)
