"""`autoworld components`: every registered component with its parameters and documentation."""

from __future__ import annotations

import typer
from rich.padding import Padding
from rich.text import Text

from autoworld.cli.common import console, echo_json, fail, handle_errors

FACTORS = ("transition", "observation", "reward")
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "minLength",
           "maxLength", "minItems", "maxItems")


def _type_of(prop: dict) -> str:
    if prop.get("type") == "array" and isinstance(prop.get("items"), dict):
        return f"array[{_type_of(prop['items'])}]"
    if "type" in prop:
        return str(prop["type"])
    if "anyOf" in prop:
        return " | ".join(_type_of(p) for p in prop["anyOf"])
    if "enum" in prop:
        return "enum"
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    return "any"


def parameters_of(params_model) -> list[dict]:
    """The parameters of a component's Params model, from its JSON schema (``kind`` left out)."""
    schema = params_model.model_json_schema()
    required = set(schema.get("required", ()))
    try:  # defaults from factories are absent from the schema; every Params() is constructible
        defaults = params_model().model_dump(mode="json")
    except ValueError:
        defaults = {}
    out = []
    for name, prop in schema.get("properties", {}).items():
        if name == "kind":
            continue
        bounds = {k: prop[k] for k in _BOUNDS if k in prop}
        if "items" in prop:
            bounds.update({f"items.{k}": prop["items"][k] for k in _BOUNDS if k in prop["items"]})
        out.append({
            "name": name,
            "type": _type_of(prop),
            "default": prop.get("default", defaults.get(name)),
            "required": name in required,
            "bounds": bounds,
            "description": prop.get("description", ""),
        })
    return out


def component_rows(factor: str | None = None) -> list[dict]:
    from autoworld.envs.grid.components import REGISTRY

    rows = []
    for name, cls in REGISTRY.items():
        if factor is not None and cls.factor != factor:
            continue
        rows.append({"factor": cls.factor, "name": name, "parameters": parameters_of(cls.Params),
                     "doc": cls.doc()})
    rows.sort(key=lambda r: (FACTORS.index(r["factor"]) if r["factor"] in FACTORS else 9,
                             r["name"]))
    return rows


def _format_bounds(bounds: dict) -> str:
    sym = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    parts = [f"{sym[k]}{v}" for k, v in bounds.items() if k in sym]
    parts += [f"{k}={v}" for k, v in bounds.items() if k not in sym]
    return " ".join(parts)


@handle_errors
def components_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    factor: str | None = typer.Option(
        None, "--factor", "-f", help="Only one factor: transition, observation or reward."
    ),
) -> None:
    """List every registered component: factor, name, parameters and documentation."""
    if factor is not None and factor not in FACTORS:
        raise fail(f"--factor: unknown factor {factor!r}; use one of {', '.join(FACTORS)}")
    rows = component_rows(factor)
    if as_json:
        echo_json(rows)
        return
    current = None
    for r in rows:
        if r["factor"] != current:
            current = r["factor"]
            console.rule(f"[bold]{current}[/bold]", align="left")
        console.print(Text(r["name"], style="bold cyan"))
        console.print(Padding(Text(" ".join(r["doc"].split())), (0, 0, 0, 4)))
        for p in r["parameters"]:
            line = Text("- ")
            line.append(p["name"], style="bold")
            line.append(f": {p['type']}" + (" (required)" if p["required"] else
                                             f" = {p['default']!r}"))
            bounds = _format_bounds(p["bounds"])
            if bounds:
                line.append(f"  ({bounds})", style="dim")
            if p["description"]:
                line.append(f"  {p['description']}")
            console.print(Padding(line, (0, 0, 0, 4)))
    console.print(f"[dim]{len(rows)} components; use them by `kind` in a spec's factor lists "
                  "(see `autoworld schema`).[/dim]")
