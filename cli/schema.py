"""`autoworld schema`: the WorldSpec JSON schema (what LLM backends are constrained to)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from autoworld.cli.common import console, handle_errors


@handle_errors
def schema_command(
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the schema to this file."),
) -> None:
    """Print the WorldSpec JSON schema, or write it to --out."""
    from autoworld.spec import atomic_write_text, spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.is_dir():
        raise IsADirectoryError(21, "is a directory, give a file name", str(out))
    atomic_write_text(out, text)
    console.print(f"wrote the WorldSpec schema to {out}")
