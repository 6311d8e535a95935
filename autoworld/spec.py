"""WorldSpec: load, save, validate and hash world specs (YAML or JSON on disk).

``WorldSpec`` is the grid family's spec for now; the arm family will join it as a discriminated
union on ``family``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from autoworld.atomic import atomic_write
from autoworld.envs.grid.spec import GridWorldSpec
from autoworld.errors import SpecError

WorldSpec = GridWorldSpec
MAX_SPEC_BYTES = 256 * 1024


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


MAX_LISTED_ERRORS = 5  # problems named in one SpecError; the rest are counted


def _message(err: dict) -> str:
    if err["type"] == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return (f"unknown component kind {ctx.get('tag')!r}; use one of "
                f"{ctx.get('expected_tags')} (see `autoworld components`)")
    if err["type"] == "extra_forbidden":
        return "unknown field; remove it (see `autoworld schema` for the fields)"
    return err["msg"]


def spec_error_from(exc: ValidationError) -> SpecError:
    """Turn pydantic's error list into one SpecError naming the first bad field and the fix,
    then the other problems (up to ``MAX_LISTED_ERRORS`` in all), so that one round of fixes
    can mend them all."""
    errs = exc.errors(include_url=False)
    # discriminated unions add the tag (component kind) to the location; keep it, it helps.
    field = _loc(errs[0]["loc"]) or "spec"
    msg = _message(errs[0])
    rest = [f"{_loc(e['loc']) or 'spec'}: {_message(e)}" for e in errs[1:MAX_LISTED_ERRORS]]
    if rest:
        msg += "; also " + "; ".join(rest)
    if len(errs) > MAX_LISTED_ERRORS:
        msg += f" (and {len(errs) - MAX_LISTED_ERRORS} more problem(s))"
    return SpecError(msg, field=field)


def parse_spec(data: Any) -> WorldSpec:
    """Validate a mapping into a WorldSpec, raising SpecError (field + fix) when it is invalid."""
    if not isinstance(data, dict):
        raise SpecError(f"a spec must be a mapping of fields, got {type(data).__name__}")
    family = data.get("family", "grid")
    if family != "grid":
        raise SpecError(f"unknown family {family!r}; use 'grid'", field="family")
    try:
        return WorldSpec.model_validate(data)
    except ValidationError as exc:
        raise spec_error_from(exc) from None


def load_spec(path: str | os.PathLike) -> WorldSpec:
    """Read a spec from a .yaml/.yml/.json file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"no such spec file: {p}")
    if p.stat().st_size > MAX_SPEC_BYTES:
        raise SpecError(f"{p} is larger than {MAX_SPEC_BYTES // 1024} KiB; a spec is small")
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix == ".json" else _yaml_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SpecError(f"{p} is not valid {'JSON' if p.suffix == '.json' else 'YAML'}: "
                        f"{_syntax_error(exc)}") from None
    return parse_spec(data)


def _syntax_error(exc: Exception) -> str:
    """A YAML or JSON syntax error in one line, with its line and column."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return str(problem)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


# libyaml's C loader when PyYAML was built with it: the same documents, ~10x faster to read
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml_load(text: str):
    return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 (a safe loader)


def spec_to_yaml(spec: WorldSpec) -> str:
    """YAML text of a spec, every field written, in the model's field order."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def spec_from_yaml(text: str) -> WorldSpec:
    return parse_spec(_yaml_load(text))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (see ``autoworld.atomic.atomic_write``)."""
    atomic_write(path, text)


def save_spec(spec: WorldSpec, path: str | os.PathLike) -> None:
    p = Path(path)
    text = spec.model_dump_json(indent=2) + "\n" if p.suffix == ".json" else spec_to_yaml(spec)
    atomic_write_text(p, text)


def spec_json_schema() -> dict:
    """The JSON schema of WorldSpec (what LLM backends are constrained to)."""
    return WorldSpec.model_json_schema()
