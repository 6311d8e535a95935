"""Typed errors. Each says what to change; the CLI prints them as one red line."""

from __future__ import annotations


class AutoworldError(Exception):
    """Base class of every error autoworld raises on purpose."""


class SpecError(AutoworldError, ValueError):
    """A world spec is malformed or out of bounds. The message names the field and the fix."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class LevelError(AutoworldError):
    """A layout generator could not produce a valid (solvable) level."""


class EngineError(AutoworldError):
    """The batched engine was built or driven with inconsistent inputs."""


class CatalogueError(AutoworldError, KeyError):
    """An unknown world name or a broken catalogue entry."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class GenerationError(AutoworldError):
    """A generator backend could not produce a proposal (endpoint down, model missing, ...)."""
