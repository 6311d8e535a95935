"""Configuration, usage counters and error type of the language agents (``llm_agent``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autoworld.errors import AutoworldError

NUM_ACTIONS = 7
NOOP_ACTION = 6


class LLMAgentError(AutoworldError):
    """A language agent cannot run: bad configuration, missing model, endpoint down."""


class LLMAgentConfig(BaseModel):
    """How a language agent talks to its model and acts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["openai", "transformers"] = Field(
        "openai", description="openai: an OpenAI-compatible endpoint; transformers: a local "
        "Hugging Face model directory.")
    model: str | None = Field(None, description="Model name (openai; default "
                              "$AUTOWORLD_LLM_MODEL) or model directory (transformers).")
    base_url: str | None = Field(None, description="Endpoint root, e.g. http://localhost:8000/v1 "
                                 "(openai; default $AUTOWORLD_LLM_BASE_URL).")
    api_key: str | None = Field(None, repr=False, exclude=True, description="API key (openai; "
                                "default $AUTOWORLD_LLM_API_KEY). Never written to results.")
    history: int = Field(4, ge=0, le=64, description="Past steps (action, reward) shown in "
                         "the prompt.")
    max_workers: int = Field(8, ge=1, le=256, description="Concurrent HTTP requests (openai).")
    batch_size: int = Field(32, ge=1, le=4096, description="Prompts per forward pass "
                            "(transformers).")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature (0: the "
                               "most likely action / the endpoint's greedy reply).")
    structured: bool = Field(True, description="Ask the endpoint for JSON-schema output "
                             "(openai); the reply is parsed robustly either way.")
    fallback: Literal["random", "noop"] | int = Field(
        "random", description="Action when a reply names no action: random (seeded uniform), "
        "noop (action 6) or an action index 0..6.")
    episodes_per_level: int = Field(1, ge=1, le=64, description="Episodes per level when the "
                                    "method runs without explicit MethodOptions.")
    timeout: float = Field(60.0, gt=0, description="Seconds per HTTP attempt (openai).")
    max_retries: int = Field(2, ge=0, le=10, description="Retries of a failed HTTP request.")
    device: str = Field("cpu", description="Torch device of the local model (transformers).")
    prefix_cache: bool = Field(True, description="Reuse the keys/values of the prompts' shared "
                               "prefix (the system message) across envs and steps "
                               "(transformers).")

    @field_validator("fallback")
    @classmethod
    def _fallback_in_range(cls, value: Any) -> Any:
        if isinstance(value, int) and not 0 <= value < NUM_ACTIONS:
            raise ValueError(f"fallback action must be 0..{NUM_ACTIONS - 1}, 'random' or "
                             f"'noop' (got {value})")
        return value


class AgentStats(BaseModel):
    """What a language agent spent and how often its model's replies were unusable."""

    model_config = ConfigDict(extra="forbid")

    decisions: int = Field(0, ge=0, description="Actions chosen (one per env per step).")
    requests: int = Field(0, ge=0, description="Model calls (HTTP requests or prompt rows).")
    parse_failures: int = Field(0, ge=0, description="Replies that named no action "
                                "(the fallback action was taken).")
    request_failures: int = Field(0, ge=0, description="Requests that failed after retries "
                                  "(the fallback action was taken).")
    prompt_tokens: int = Field(0, ge=0, description="Prompt tokens, as reported / counted.")
    completion_tokens: int = Field(0, ge=0, description="Reply tokens, as reported / counted.")
    seconds: float = Field(0.0, ge=0.0, description="Wall-clock time spent in model calls.")
