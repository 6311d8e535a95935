"""A small OpenAI-compatible chat client: structured JSON output, retries, token accounting.

It speaks the chat-completions protocol through the official ``openai`` package, so it works
with OpenAI, vLLM, Ollama, llama.cpp server and any other compatible endpoint. Network errors,
timeouts, rate limits and 5xx answers are retried with exponential backoff (our loop, not the
SDK's, so that the attempts and the final error are ours); then a ``GenerationError`` says what
failed and what to check.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from autoworld.errors import GenerationError

log = logging.getLogger(__name__)

ENV_BASE_URL = "AUTOWORLD_LLM_BASE_URL"
ENV_MODEL = "AUTOWORLD_LLM_MODEL"
ENV_API_KEY = "AUTOWORLD_LLM_API_KEY"
DEFAULT_MODEL = "gpt-4o-mini"
# Endpoints without authentication (vLLM, Ollama, llama.cpp) still need a non-empty key.
PLACEHOLDER_KEY = "not-needed"
# A reply is one spec; anything much larger is not a spec and is cut off by the server.
MAX_REPLY_TOKENS = 4096


class ChatReply(BaseModel):
    """The text of one chat completion and its token usage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = Field("", description="The assistant message's content.")
    prompt_tokens: int = Field(0, ge=0, description="Tokens in the request, as reported.")
    completion_tokens: int = Field(0, ge=0, description="Tokens in the reply, as reported.")
    attempts: int = Field(1, ge=1, description="HTTP attempts made (1 + retries used).")
    seconds: float = Field(0.0, ge=0.0, description="Wall-clock time, retries included.")
    finish_reason: str | None = Field(None, description="Why the model stopped: 'stop', or "
                                      "'length' when the reply hit the token limit.")


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise GenerationError(
            "the openai backend needs the `openai` package; install it with "
            "`pip install 'autoworld[llm]'` (or `pip install openai`)") from exc
    return openai


MAX_RETRY_AFTER = 60.0  # seconds: the longest Retry-After a rate-limited answer makes us wait


def _retry_after(exc: Exception) -> float:
    """Seconds a 429/503 answer asks the client to wait (its ``Retry-After`` header in
    seconds), capped at ``MAX_RETRY_AFTER``; 0 when it names none."""
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value))) if value is not None else 0.0
    except (TypeError, ValueError):  # an HTTP date: the exponential backoff applies
        return 0.0


class _BadReply(Exception):
    """An answer with status 200 that is not a chat completion."""


class LLMClient:
    """Chat completions against one OpenAI-compatible endpoint.

    Args:
        base_url: endpoint root (e.g. ``http://localhost:8000/v1``); default
            ``$AUTOWORLD_LLM_BASE_URL``, else the SDK's (OpenAI).
        model: model name; default ``$AUTOWORLD_LLM_MODEL``, else ``gpt-4o-mini``.
        api_key: default ``$AUTOWORLD_LLM_API_KEY``, else ``$OPENAI_API_KEY``, else a
            placeholder (local servers ignore it).
        timeout: seconds per HTTP attempt.
        max_retries: retries after the first attempt on network errors, timeouts, 408, 409,
            429, 5xx and 200 answers that are not a completion (a proxy's page, cut JSON).
        backoff: seconds before the first retry; doubled for each further retry.
    """

    def __init__(self, base_url: str | None = None, model: str | None = None,
                 api_key: str | None = None, timeout: float = 30.0, max_retries: int = 2,
                 backoff: float = 1.0) -> None:
        if timeout <= 0:
            raise GenerationError(f"timeout must be positive, got {timeout}")
        if max_retries < 0:
            raise GenerationError(f"max_retries must be >= 0, got {max_retries}")
        self.base_url = base_url or os.environ.get(ENV_BASE_URL) or None
        self.model = model or os.environ.get(ENV_MODEL) or DEFAULT_MODEL
        self._api_key = (api_key or os.environ.get(ENV_API_KEY)
                         or os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_KEY)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self._client: Any = None

    def _sdk(self) -> Any:
        if self._client is None:
            openai = _import_openai()
            # max_retries=0: retries are ours (see ``chat``), so their count and errors are too.
            self._client = openai.OpenAI(base_url=self.base_url, api_key=self._api_key,
                                         timeout=self.timeout, max_retries=0)
        return self._client

    def _retryable(self, exc: Exception) -> bool:
        openai = _import_openai()
        if isinstance(exc, (openai.APIConnectionError, openai.RateLimitError,
                            openai.InternalServerError)):  # APITimeoutError is a connection error
            return True
        if isinstance(exc, (_BadReply, ValueError)):
            return True  # a proxy's page or a half-sent body: the next attempt may be whole
        # 408 (the server timed out) and 409 (a conflict) are worth another try, as the SDK's
        # own retries judge them
        return isinstance(exc, openai.APIStatusError) and (exc.status_code >= 500
                                                          or exc.status_code in (408, 409))

    def chat(self, messages: list[dict[str, str]], json_schema: dict[str, Any] | None = None,
             schema_name: str = "WorldSpec", seed: int | None = None,
             temperature: float | None = None) -> ChatReply:
        """One chat completion, with structured output when ``json_schema`` is given."""
        openai = _import_openai()
        client = self._sdk()
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages,
                                  "max_tokens": MAX_REPLY_TOKENS}
        if json_schema is not None:
            # strict=False: strict mode forbids defaults/bounds that WorldSpec relies on; the
            # validator checks the reply anyway.
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": schema_name, "schema": json_schema, "strict": False}}
        if seed is not None:
            kwargs["seed"] = int(seed)
        if temperature is not None:
            kwargs["temperature"] = float(temperature)
        start = time.perf_counter()
        where = self.base_url or "the default OpenAI endpoint"
        last: Exception | None = None
        for attempt in range(1, self.max_retries + 2):
            try:
                resp = client.chat.completions.create(**kwargs)
                if not getattr(resp, "choices", None):
                    # a 200 without choices: an HTML page of a proxy, or {"error": ...}
                    raise _BadReply(f"the reply has no choices: {str(resp)[:200]}")
            except (openai.OpenAIError, _BadReply, ValueError) as exc:
                # ValueError: a body that is not JSON (json.JSONDecodeError) or not a
                # completion; every failure of a request is a GenerationError to the caller
                last = exc
                if not self._retryable(exc) or attempt > self.max_retries:
                    break
                delay = max(self.backoff * 2 ** (attempt - 1), _retry_after(exc))
                log.warning("LLM call to %s failed (%s); retry %d/%d in %.2fs", where,
                            type(exc).__name__, attempt, self.max_retries, delay)
                time.sleep(delay)
                continue
            text = resp.choices[0].message.content or ""
            finish = getattr(resp.choices[0], "finish_reason", None)
            usage = getattr(resp, "usage", None)
            return ChatReply(
                text=text,
                prompt_tokens=max(0, int(getattr(usage, "prompt_tokens", 0) or 0)),
                completion_tokens=max(0, int(getattr(usage, "completion_tokens", 0) or 0)),
                attempts=attempt, seconds=time.perf_counter() - start,
                finish_reason=str(finish) if finish is not None else None)
        assert last is not None
        kind = type(last).__name__
        detail = " ".join(str(last).split())[:300]
        if isinstance(last, openai.APIStatusError) and not self._retryable(last):
            hint = (f"; check the model name ({self.model!r}) and the API key (${ENV_API_KEY})"
                    if last.status_code in (400, 401, 403, 404) else "")
            raise GenerationError(
                f"LLM endpoint {where} rejected the request ({kind} {last.status_code}: "
                f"{detail}){hint}") from None
        raise GenerationError(
            f"LLM endpoint {where} failed after {attempt} attempt(s) ({kind}: {detail}); "
            f"check the endpoint's URL (${ENV_BASE_URL} by default) and that the server is up, "
            f"or raise the timeout ({self.timeout:g}s) / retries ({self.max_retries}); "
            "`autoworld generate` takes --base-url, --timeout and --retries") from None
