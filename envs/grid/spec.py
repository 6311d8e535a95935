"""WorldSpec of the grid family: a frozen pydantic model that fully determines a world.

A spec is data: nothing in it is ever executed as code. Its canonical content hash is its id.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoworld.envs.grid import components as _components  # noqa: F401  (registers all)
from autoworld.envs.grid.components.registry import components_of
from autoworld.envs.grid.layouts_spec import Layout, Objects, OpenRoomLayout


def _union(factor: str):
    """The discriminated union (on ``kind``) of every registered component of one factor."""
    params = tuple(c.Params for c in components_of(factor))  # type: ignore[arg-type]
    return Annotated[Union[params], Field(discriminator="kind")]  # noqa: UP007


TransitionComponent = _union("transition")
ObservationComponent = _union("observation")
RewardComponent = _union("reward")

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$"


class GridWorldSpec(BaseModel):
    """A grid world: size, layout, objects and the three factor lists."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: Literal["grid"] = Field("grid", description="World family.")
    name: str = Field(..., pattern=NAME_PATTERN, description="World name (letters, digits, _.-).")
    description: str = Field("", max_length=500, description="One or two sentences for people.")
    height: int = Field(8, ge=5, le=32, description="Grid rows, outer walls included.")
    width: int = Field(8, ge=5, le=32, description="Grid columns, outer walls included.")
    max_steps: int = Field(100, ge=1, le=1000, description="Steps before truncation.")
    layout: Layout = Field(default_factory=OpenRoomLayout, description="Layout generator.")
    objects: Objects = Field(default_factory=Objects, description="Objects placed on the floor.")
    transition: list[TransitionComponent] = Field(  # type: ignore[valid-type]
        ..., min_length=1, max_length=12,
        description="Transition components; exactly one movement scheme (turn_forward or "
        "cardinal).",
    )
    observation: list[ObservationComponent] = Field(  # type: ignore[valid-type]
        ..., min_length=1, max_length=12,
        description="Observation components; exactly one view (full_grid or egocentric).",
    )
    reward: list[RewardComponent] = Field(  # type: ignore[valid-type]
        ..., min_length=1, max_length=12, description="Reward (and termination) components."
    )

    @model_validator(mode="after")
    def _check_factors(self) -> GridWorldSpec:
        for factor in ("transition", "observation", "reward"):
            kinds = [c.kind for c in getattr(self, factor)]
            dup = {k for k in kinds if kinds.count(k) > 1}
            if dup:
                raise ValueError(f"{factor}: component {sorted(dup)[0]!r} is listed twice; "
                                 "keep one")
        moves = [c.kind for c in self.transition if c.kind in ("turn_forward", "cardinal")]
        if len(moves) != 1:
            raise ValueError("transition: needs exactly one movement scheme, 'turn_forward' or "
                             f"'cardinal' (found {moves or 'none'})")
        views = [c.kind for c in self.observation if c.kind in ("full_grid", "egocentric")]
        if len(views) != 1:
            raise ValueError("observation: needs exactly one view, 'full_grid' or 'egocentric' "
                             f"(found {views or 'none'})")
        if "line_of_sight" in {c.kind for c in self.observation} and views != ["egocentric"]:
            raise ValueError("observation: 'line_of_sight' needs the 'egocentric' view")
        timed = {c.kind: c.time_decay for c in self.reward if hasattr(c, "time_decay")}
        if len(set(timed.values())) > 1:
            # the engine keeps one time decay per env (a timed reward is paid when the episode
            # ends), so different values would pay one component the other's decay
            raise ValueError("reward: " + " and ".join(f"{k}.time_decay={v}" for k, v in
                                                       sorted(timed.items()))
                             + " differ; give the timed rewards one time_decay")
        return self

    # ------------------------------------------------------------------ identity
    def canonical_json(self) -> str:
        """Canonical JSON text: every field written (defaults included), keys sorted."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def content_hash(self) -> str:
        """A 16-hex-digit id from the canonical JSON; the name and description are excluded so
        that renaming a world does not change what it is."""
        data = self.model_dump(mode="json", exclude={"name", "description"})
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def world_key(self) -> str:
        """Like ``content_hash``, but blind to the order in which each factor lists its
        components: the engine runs them in its own stage order, so two specs that differ only
        there are the same world (novelty dedup and POET compare worlds by this key). The
        content hash stays the spec's id (it seeds the level banks)."""
        data = self.model_dump(mode="json", exclude={"name", "description"})
        for factor in ("transition", "observation", "reward"):
            data[factor] = sorted(data[factor], key=lambda c: c["kind"])
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def component(self, kind: str) -> Any | None:
        """The params of component ``kind`` in any factor, or None."""
        for factor in (self.transition, self.observation, self.reward):
            for c in factor:
                if c.kind == kind:
                    return c
        return None
