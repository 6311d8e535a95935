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
        """``params``: one entry per world of ``engine.worlds``, None where a world lacks this
        component (its envs get the neutral default ``Params()``).

        Setup code works on the few distinct params objects (``unique_params``) and expands
        them per env through ``param_index`` (B,), so a million-env batch costs no per-env
        Python work."""
        self.engine = engine
        self.device = engine.device
        if len(params) != len(engine.worlds):
            raise ValueError(f"{self.name}: give one params entry per world "
                             f"({len(engine.worlds)}), got {len(params)}")
        default = self.Params()
        in_batch = (torch.bincount(engine.world_ids.cpu(), minlength=len(params)) > 0).tolist()
        slot: dict[int, int] = {}
        self.unique_params: list[ComponentParams] = []
        self.unique_active: list[bool] = []
        world_slot = []
        for p, used in zip(params, in_batch, strict=True):
            q = default if p is None else p
            if id(q) not in slot:
                slot[id(q)] = len(self.unique_params)
                self.unique_params.append(q)
                self.unique_active.append(False)
            world_slot.append(slot[id(q)])
            if p is not None and used:
                self.unique_active[slot[id(q)]] = True
        index = torch.tensor(world_slot, dtype=torch.long, device=self.device)
        self.param_index = index[engine.world_ids]  # (B,)
        active_worlds = torch.tensor([p is not None for p in params], dtype=torch.bool,
                                     device=self.device)
        self.active = active_worlds[engine.world_ids]  # (B,)
        self.all_active = bool(self.active.all())
        # The envs whose world has this component: static for the engine's life, so costly
        # components can compute for these rows only (index_select / index_copy, no host sync).
        self.active_index = self.active.nonzero().flatten()
        self.setup()

    # ------------------------------------------------------------------ helpers
    def gate(self, mask: torch.Tensor) -> torch.Tensor:
        """Restrict an event mask (B,) bool to the envs whose world has this component."""
        return mask if self.all_active else mask & self.active

    def column(self, field: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """One parameter as a per-env tensor (B,)."""
        return self.per_env([getattr(p, field) for p in self.unique_params], dtype)

    def per_env(self, values, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Values given per distinct params object (``unique_params`` order) as per-env rows."""
        return torch.as_tensor(values, dtype=dtype, device=self.device)[self.param_index]

    def active_params(self) -> list[ComponentParams]:
        """The distinct params of the worlds that have this component."""
        return [p for p, a in zip(self.unique_params, self.unique_active, strict=True) if a]

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
