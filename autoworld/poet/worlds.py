"""Worlds of a POET run: the initial world, children proposed by the generator, and their
validation (the same staged validator every generated world goes through)."""

from __future__ import annotations

from typing import Any

from autoworld.poet.config import PoetConfig, PoetError
from autoworld.poet.rollout import WorldEntry


def make_backend(name: str, model: str | None = None) -> Any:
    """The generator backend ``name``; LLM backends are imported lazily."""
    if name == "procedural":
        from autoworld.generator.procedural import ProceduralBackend

        return ProceduralBackend()
    try:
        if name == "openai":
            from autoworld.generator.openai_backend import OpenAIBackend

            return OpenAIBackend(model=model) if model else OpenAIBackend()
        if name == "transformers":
            from autoworld.generator.transformers_backend import TransformersBackend

            if not model:
                raise PoetError("generator_model: the transformers backend needs a local model "
                                "path (--generator-model PATH)")
            return TransformersBackend(model)
    except ImportError as exc:
        raise PoetError(f"generator: the {name!r} backend is not available ({exc}); install the "
                        "'llm' extra or use --generator procedural") from None
    raise PoetError(f"generator: unknown backend {name!r}; use procedural, openai or "
                    "transformers")


def entry_from_report(spec, report) -> WorldEntry:
    """A run's world entry from a passed validation report (its oracle figures)."""
    levels = sorted(report.levels, key=lambda c: c.index)
    rnd = [c.random_return if c.random_return is not None else 0.0 for c in levels]
    return WorldEntry(spec, [c.optimal_return for c in levels], rnd)


def validate_world(spec, cfg: PoetConfig):
    """(entry or None, reason): the validator's verdict on ``spec`` with the run's settings."""
    from autoworld.validation import validate

    report = validate(spec, num_levels=cfg.validation_levels, split="validation", seed=0)
    if not report.ok:
        stage = report.failed_stage
        return None, f"validation ({stage.name if stage else '?'}): {report.error}"
    return entry_from_report(spec, report), ""


def initial_world(cfg: PoetConfig):
    """The run's first world: generated from ``cfg.theme`` or loaded from ``cfg.world``."""
    from autoworld.envs.catalogue import load_world
    from autoworld.spec import parse_spec

    if cfg.theme:
        backend = make_backend(cfg.generator, cfg.generator_model)
        for attempt in range(8):
            prop = backend.propose(cfg.theme, seed=cfg.seed + attempt)
            if prop.data is None:
                continue
            try:
                spec = parse_spec(prop.data)
            except Exception:  # noqa: BLE001 - a bad proposal is retried with another seed
                continue
            entry, _ = validate_world(spec, cfg)
            if entry is not None:
                return entry
        raise PoetError(f"theme: no valid world for {cfg.theme!r} after 8 proposals; try "
                        "another theme or --world NAME")
    spec = load_world(cfg.world)
    entry, why = validate_world(spec, cfg)
    if entry is None:
        raise PoetError(f"world: {cfg.world} does not validate: {why}")
    return entry


def propose_child(backend: Any, parent, seed: int, strength: float):
    """A child spec of ``parent`` from the generator (procedural: ``mutate``), or (None,
    reason)."""
    from autoworld.errors import AutoworldError
    from autoworld.spec import parse_spec

    if getattr(backend, "name", "") == "procedural":
        from autoworld.generator.mutate import mutate

        try:
            return mutate(parent, seed, strength=strength), ""
        except AutoworldError as exc:
            return None, f"mutation: {exc}"
    try:
        prop = backend.propose(parent.name, seed=seed, parent=parent.model_dump(mode="json"))
        if prop.data is None:
            return None, "generator: the reply did not parse"
        return parse_spec(prop.data), ""
    except AutoworldError as exc:
        return None, f"generator: {exc}"
