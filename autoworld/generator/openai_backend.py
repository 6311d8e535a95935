"""The ``openai`` backend: any OpenAI-compatible chat endpoint with JSON-schema output."""

from __future__ import annotations

from typing import Any

from autoworld.generator.base import Proposal
from autoworld.generator.llm_client import LLMClient
from autoworld.generator.prompt import chat_messages, parse_reply
from autoworld.spec import spec_json_schema


class OpenAIBackend:
    """Proposes specs through an OpenAI-compatible chat-completions endpoint.

    The request carries the system prompt (task, component docs, WorldSpec schema) and asks for
    structured output against the WorldSpec JSON schema. The reply is parsed as JSON only; the
    validator decides whether it is a world.

    Args:
        base_url, model, api_key: the endpoint; default ``$AUTOWORLD_LLM_BASE_URL``,
            ``$AUTOWORLD_LLM_MODEL``, ``$AUTOWORLD_LLM_API_KEY``.
        timeout: seconds per HTTP attempt.
        max_retries: retries on network errors and timeouts before a ``GenerationError``.
        backoff: seconds before the first retry (doubled each time).
        temperature: sampling temperature sent with each request (None: the server's default).
        usd_per_1k_prompt, usd_per_1k_completion: prices used to fill ``Proposal.cost_usd``.
    """

    name = "openai"

    def __init__(self, base_url: str | None = None, model: str | None = None,
                 api_key: str | None = None, timeout: float = 30.0, max_retries: int = 2,
                 backoff: float = 1.0, temperature: float | None = None,
                 usd_per_1k_prompt: float = 0.0, usd_per_1k_completion: float = 0.0) -> None:
        self.client = LLMClient(base_url=base_url, model=model, api_key=api_key,
                                timeout=timeout, max_retries=max_retries, backoff=backoff)
        self.temperature = temperature
        self.usd_per_1k_prompt = usd_per_1k_prompt
        self.usd_per_1k_completion = usd_per_1k_completion

    @property
    def model(self) -> str:
        return self.client.model

    def propose(self, theme: str, seed: int, feedback: str | None = None,
                parent: dict[str, Any] | None = None) -> Proposal:
        reply = self.client.chat(chat_messages(theme, feedback, parent),
                                 json_schema=spec_json_schema(), seed=seed,
                                 temperature=self.temperature)
        cost = (reply.prompt_tokens * self.usd_per_1k_prompt
                + reply.completion_tokens * self.usd_per_1k_completion) / 1000.0
        return Proposal(text=reply.text, data=parse_reply(reply.text),
                        prompt_tokens=reply.prompt_tokens,
                        completion_tokens=reply.completion_tokens,
                        cost_usd=cost, seconds=reply.seconds,
                        truncated=reply.finish_reason == "length")
