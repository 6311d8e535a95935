"""The component registry of the grid family.

A component is one small class: a pydantic ``Params`` model (typed, bounded, described; its
``kind`` literal is the registered name) and a batched implementation that reads and writes the
engine's step context. One docstring documents it for the CLI and for LLM prompts.

Heterogeneous batches: the engine builds one program from the union of the components of every
world in the batch. Each component receives per-env parameter tensors packed from its worlds'
params; envs whose world lacks the component get the neutral ``Params()`` values and
``active=False``, and ``self.gate(mask)`` masks the component's effects off for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from autoworld.envs.grid.engine import GridEngine, StepContext

Factor = Literal["transition", "observation", "reward"]


class ComponentParams(BaseModel):
    """Base of every component's parameter model: frozen, no extra fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class GridComponent:
    """Base class of a batched grid component. Subclasses set the class variables below."""

    factor: ClassVar[Factor]
    name: ClassVar[str]
    Params: ClassVar[type[ComponentParams]]
    # Where in the step it runs; the engine calls hooks stage by stage, in ``order`` within one.
    stage: ClassVar[str]
    order: ClassVar[int] = 100
    # Stochastic transition components: number of discrete outcomes (0: deterministic). The
    # oracle enumerates outcomes through ``outcome_probs``; the engine samples them per step.
    num_outcomes: ClassVar[int] = 0
    # Names of the extra per-env state tensors this component owns (see ``init_extras``).
    extras: ClassVar[tuple[str, ...]] = ()

    def __init__(self, engine: GridEngine, params: list[ComponentParams | None]) -> None:
        self.engine = engine
        self.device = engine.device
        actives = [p is not None for p in params]
        self.all_active = all(actives)
        self.active = torch.tensor(actives, dtype=torch.bool, device=self.device)  # (B,)
        # The envs whose world has this component: static for the engine's life, so costly
        # components can compute for these rows only (index_select / index_copy, no host sync).
        self.active_index = torch.tensor([i for i, a in enumerate(actives) if a],
                                         dtype=torch.long, device=self.device)
        self.params = [p if p is not None else self.Params() for p in params]
        self.setup()

    # ------------------------------------------------------------------ helpers
    def gate(self, mask: torch.Tensor) -> torch.Tensor:
        """Restrict an event mask (B,) bool to the envs whose world has this component."""
        return mask if self.all_active else mask & self.active

    def column(self, field: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """One parameter as a per-env tensor (B,)."""
        return torch.tensor([getattr(p, field) for p in self.params], dtype=dtype,
                            device=self.device)

    # ------------------------------------------------------------------ hooks
    def setup(self) -> None:
        """Pack parameters into tensors and precompute tables. Runs once at engine build."""

    def level_data(self, bank) -> dict[str, torch.Tensor]:
        """Per-level tensors (L, ...) precomputed from the level bank, gathered at reset."""
        return {}

    def init_extras(self, state, fresh: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Initial values of this component's extra state for freshly reset envs (all B rows)."""
        return {}

    def outcome_probs(self) -> torch.Tensor:
        """(B, num_outcomes) float32 probabilities of the discrete outcomes of this component."""
        raise NotImplementedError

    def apply(self, ctx: StepContext) -> None:
        """Run this component's part of a step on the batched context (in place)."""
        raise NotImplementedError

    @classmethod
    def doc(cls) -> str:
        return (cls.__doc__ or "").strip()


REGISTRY: dict[str, type[GridComponent]] = {}


def register(cls: type[GridComponent]) -> type[GridComponent]:
    """Class decorator: add a component to the registry (names are unique across factors)."""
    kind_field = cls.Params.model_fields.get("kind")
    if kind_field is None or kind_field.default != cls.name:
        raise TypeError(f"{cls.__name__}.Params needs kind: Literal[{cls.name!r}] = {cls.name!r}")
    if cls.name in REGISTRY:
        raise ValueError(f"grid component {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls
    return cls


def components_of(factor: Factor) -> list[type[GridComponent]]:
    return [c for c in REGISTRY.values() if c.factor == factor]
