"""The generator interface: backends propose specs, one loop validates and repairs them.

A backend turns a theme (and, on a repair round, the validator's message about its last
proposal) into a ``Proposal``: the raw text it produced and the parsed mapping, if any. It never
executes anything; the proposal is data that the staged validator (``autoworld.validation``)
accepts or rejects. ``Generator.generate`` drives the rounds and records per-stage statistics,
time, tokens and cost for every run.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class Proposal(BaseModel):
    """One reply of a backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = Field("", description="The raw text the backend produced (JSON for LLMs).")
    data: dict[str, Any] | None = Field(
        None, description="The parsed spec mapping, or None when the text did not parse."
    )
    prompt_tokens: int = Field(0, ge=0, description="Tokens sent to the model.")
    completion_tokens: int = Field(0, ge=0, description="Tokens the model produced.")
    cost_usd: float = Field(0.0, ge=0.0, description="Cost of the call, when priced.")
    seconds: float = Field(0.0, ge=0.0, description="Wall-clock time of the call.")
    truncated: bool = Field(False, description="The reply stopped at the token limit (its text "
                            "is cut short), not at its end.")


@runtime_checkable
class Backend(Protocol):
    """What every generator backend provides."""

    name: str

    def propose(self, theme: str, seed: int, feedback: str | None = None,
                parent: dict[str, Any] | None = None) -> Proposal:
        """A spec proposal for ``theme``.

        Args:
            theme: the user's sentence (untrusted text: never executed, never formatted into
                code).
            seed: determinism handle; the same (theme, seed, feedback, parent) gives the same
                proposal for deterministic backends.
            feedback: on a repair round, the validator's one-line message about the previous
                proposal (which field failed and how to fix it).
            parent: for mutation, the parent spec as a JSON mapping ("a new, harder variant").
        """
        ...
