"""Hyper-parameters from a YAML/JSON file and ``KEY=VALUE`` overrides, validated by the config's
own pydantic model (``autoworld train --config FILE --set policy.dense_layers=2``).

A file holds any subset of the model's fields (nested models as nested mappings); overrides
come after the file, use dotted keys for nested fields, and parse their value as YAML (``2`` is
an int, ``true`` a bool, ``null`` None, ``onehot`` a string). Whatever is invalid raises one
``ConfigError`` naming the field and the fix; nothing is silently ignored.

Example:
    >>> from autoworld.learners.ppo import PPOConfig
    >>> cfg = configure(PPOConfig, sets=["policy.encoding=onehot", "learning_rate=1e-3"])
    >>> cfg.policy.encoding, cfg.learning_rate
    ('onehot', 0.001)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from autoworld.errors import AutoworldError

M = TypeVar("M", bound=BaseModel)


class ConfigError(AutoworldError, ValueError):
    """A hyper-parameter file or override is malformed or names an unknown field."""


def _fields_of(model: type[BaseModel], path: Sequence[str]) -> list[str]:
    """The field names of the (nested) model at ``path``, for error messages."""
    for part in path:
        info = model.model_fields.get(part)
        sub = getattr(info, "annotation", None) if info is not None else None
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            return []
        model = sub
    return sorted(model.model_fields)


def _error_from(model: type[BaseModel], exc: ValidationError, source: str) -> ConfigError:
    first = exc.errors(include_url=False)[0]
    loc = [str(p) for p in first["loc"]]
    field = ".".join(loc) or model.__name__
    if first["type"] == "extra_forbidden":
        known = _fields_of(model, loc[:-1])
        msg = f"unknown field; use one of {', '.join(known)}" if known else "unknown field"
    else:
        msg = first["msg"]
        if "input" in first and not isinstance(first["input"], dict):
            msg += f" (got {first['input']!r})"
    return ConfigError(f"{source}: {field}: {msg}")


def parse_set(item: str) -> tuple[list[str], Any]:
    """``'a.b=VALUE'`` -> (['a', 'b'], VALUE parsed as YAML)."""
    key, sep, raw = item.partition("=")
    path = key.strip().split(".")
    if not sep or not all(path):
        raise ConfigError(f"--set {item!r}: write KEY=VALUE, e.g. policy.dense_layers=2")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: the value is not valid YAML ({exc})") from None
    return path, value


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a .yaml/.yml/.json file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config {p}: no such file")
    try:
        data = yaml.safe_load(p.read_text())  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {p}: not valid YAML/JSON ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {p}: expected a mapping of fields, got "
                          f"{type(data).__name__}")
    return data


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v
    return into


def configure(model: type[M], base: M | None = None, path: str | Path | None = None,
              sets: Sequence[str] = ()) -> M:
    """``base`` (default: the model's defaults), updated by the file at ``path``, then by the
    ``KEY=VALUE`` overrides ``sets``, validated as ``model``."""
    data = (base if base is not None else model()).model_dump()
    if path is not None:
        try:
            _merge(data, read_config_file(path))
            model.model_validate(data)
        except ValidationError as exc:
            raise _error_from(model, exc, f"--config {path}") from None
    for item in sets:
        keys, value = parse_set(item)
        node = data
        for i, k in enumerate(keys[:-1]):
            if not isinstance(node.get(k), dict):
                known = _fields_of(model, keys[:i])
                hint = f"; use one of {', '.join(known)}" if known else ""
                raise ConfigError(f"--set {item!r}: {'.'.join(keys[: i + 1])} is not a "
                                  f"group of fields{hint}")
            node = node[k]
        node[keys[-1]] = value
        try:
            model.model_validate(data)
        except ValidationError as exc:
            raise _error_from(model, exc, f"--set {item!r}") from None
    return model.model_validate(data)


def dump_config(config: BaseModel) -> str:
    """The config as YAML (what ``--config`` reads back)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
