"""The two model backends of a language agent, each choosing actions for a batch of prompts.

``_OpenAIChooser`` sends the prompts concurrently to an OpenAI-compatible endpoint and
``_TransformersChooser`` runs a local causal LM with the next token restricted to the action
numbers, reusing the keys and values of the shared system message.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from autoworld.errors import GenerationError
from autoworld.learners.llm_config import LLMAgentConfig, LLMAgentError

log = logging.getLogger(__name__)


# ====================================================================== backends
class _Reply(BaseModel):
    text: str | None = None  # None: the request failed
    action: int | None = None  # set by constrained backends
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _OpenAIChooser:
    """Concurrent chat requests to an OpenAI-compatible endpoint."""

    reply = "json"

    def __init__(self, cfg: LLMAgentConfig, names: list[str]) -> None:
        from autoworld.generator.llm_client import LLMClient

        try:
            self.client = LLMClient(base_url=cfg.base_url, model=cfg.model,
                                    api_key=cfg.api_key, timeout=cfg.timeout,
                                    max_retries=cfg.max_retries)
        except GenerationError as exc:
            raise LLMAgentError(str(exc)) from None
        self.cfg = cfg
        self.schema = {"type": "object", "additionalProperties": False, "required": ["action"],
                       "properties": {"action": {"type": "string", "enum": list(names)}}}
        self.pool = ThreadPoolExecutor(max_workers=cfg.max_workers,
                                       thread_name_prefix="llm-agent")

    @property
    def model_name(self) -> str:
        return self.client.model

    def _one(self, messages: list[dict[str, str]], seed: int) -> _Reply:
        try:
            rep = self.client.chat(messages, json_schema=self.schema if self.cfg.structured
                                   else None, schema_name="Action", seed=seed,
                                   temperature=self.cfg.temperature)
        except Exception as exc:  # noqa: BLE001 - one bad request must not end the evaluation
            log.warning("language agent request failed: %s: %s", type(exc).__name__, exc)
            return _Reply(text=None)
        return _Reply(text=rep.text, prompt_tokens=rep.prompt_tokens,
                      completion_tokens=rep.completion_tokens)

    def choose(self, prompts: list[list[dict[str, str]]], seeds: list[int]) -> list[_Reply]:
        return list(self.pool.map(self._one, prompts, seeds))

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class _TransformersChooser:
    """Batched forward passes of a local causal LM, the next token restricted to 0..6."""

    reply = "number"

    def __init__(self, cfg: LLMAgentConfig, names: list[str]) -> None:
        try:
            import transformers
        except ImportError as exc:
            raise LLMAgentError("a local language agent needs transformers; install the `llm` "
                                "extra (`pip install 'autoworld[llm]'`)") from exc
        if not cfg.model or not Path(cfg.model).is_dir():
            raise LLMAgentError(f"model: no model folder at {cfg.model!r}; pass a local Hugging "
                                "Face model directory (config.json, weights, tokenizer)")
        from autoworld.generator.transformers_backend import load_causal_lm

        self.cfg = cfg
        self.tok, self.model = load_causal_lm(transformers, cfg.model, cfg.device,
                                              LLMAgentError, prefix="model: ")
        ids = []
        for i in range(len(names)):
            toks = self.tok.encode(str(i), add_special_tokens=False)
            if len(toks) != 1:
                raise LLMAgentError(f"model: the tokenizer of {cfg.model} splits the action "
                                    f"number {i} into {len(toks)} tokens; constrained choice "
                                    "needs one token per digit")
            ids.append(toks[0])
        self.choice_ids = torch.tensor(ids, dtype=torch.long)
        pad = self.tok.pad_token_id
        self.pad_id = pad if pad is not None else (self.tok.eos_token_id or 0)
        self._prefix_ids: list[int] | None = None
        self._prefix_kv: Any = None
        self._system_len: tuple[str, int] | None = None

    @property
    def model_name(self) -> str:
        return str(self.cfg.model)

    def _ids(self, messages: list[dict[str, str]]) -> list[int]:
        from autoworld.generator.transformers_backend import chat_token_ids

        return chat_token_ids(self.tok, messages, "\n\nAction number: ")

    def _system_prefix_len(self, system: str) -> int:
        """Tokens of a prompt that depend only on the system message (found once per message:
        the common prefix of two prompts that differ only in their user message)."""
        if self._system_len is None or self._system_len[0] != system:
            a = self._ids([{"role": "system", "content": system}, {"role": "user", "content": "A"}])
            b = self._ids([{"role": "system", "content": system}, {"role": "user", "content": "B"}])
            k = 0
            while k < min(len(a), len(b)) and a[k] == b[k]:
                k += 1
            self._system_len = (system, k)
        return self._system_len[1]

    def _last_logits(self, chunk: list[list[int]], limit: int | None = None) -> torch.Tensor:
        """(b, V) next-token logits after each prompt of ``chunk``.

        The prompts share a long prefix (the system message); its keys and values are computed
        once and reused (``prefix_cache``), so a step only runs the short per-env suffixes,
        right-padded (causal attention never lets a real token see the padding after it).
        """
        dev = self.cfg.device
        common = min(len(c) for c in chunk) - 1  # every row keeps at least one suffix token
        if limit is not None:  # a prefix that stays the same from step to step
            common = min(common, limit)
        first = chunk[0]
        for c in chunk[1:]:
            k = 0
            while k < common and c[k] == first[k]:
                k += 1
            common = k
        if self.cfg.prefix_cache and common >= 16:
            try:
                return self._cached_logits(chunk, first[:common])
            except (TypeError, ValueError, AttributeError, RuntimeError) as exc:
                log.warning("prefix caching is not supported by this model (%s); running full "
                            "prompts", exc)
                self.cfg = self.cfg.model_copy(update={"prefix_cache": False})
        width = max(len(c) for c in chunk)
        ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, c in enumerate(chunk):  # left padding: every prompt ends at the last column
            ids[i, width - len(c):] = torch.tensor(c, dtype=torch.long)
            mask[i, width - len(c):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev),
                          position_ids=pos.to(dev)).logits[:, -1].float().cpu()

    def _cached_logits(self, chunk: list[list[int]], prefix: list[int]) -> torch.Tensor:
        import copy
        import inspect

        dev = self.cfg.device
        params = inspect.signature(self.model.forward).parameters
        cache_arg = "cache" if "cache" in params else "past_key_values"
        if self._prefix_ids != prefix:
            res = self.model(input_ids=torch.tensor([prefix], device=dev), use_cache=True)
            cache = getattr(res, "cache", None)
            self._prefix_kv = cache if cache is not None else res.past_key_values
            self._prefix_ids = list(prefix)
        P, b = len(prefix), len(chunk)
        cache = copy.deepcopy(self._prefix_kv)  # the forward appends to it
        cache.batch_repeat_interleave(b)
        suffixes = [c[P:] for c in chunk]
        width = max(len(x) for x in suffixes)
        ids = torch.full((b, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((b, P + width), dtype=torch.long)
        mask[:, :P] = 1
        for i, x in enumerate(suffixes):
            ids[i, :len(x)] = torch.tensor(x, dtype=torch.long)
            mask[i, P:P + len(x)] = 1
        pos = (P + torch.arange(width)).expand(b, width)
        logits = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev),
                            position_ids=pos.to(dev), use_cache=True,
                            **{cache_arg: cache}).logits.float().cpu()  # (b, width, V)
        last = torch.tensor([len(x) - 1 for x in suffixes])
        return logits[torch.arange(b), last]

    @torch.no_grad()
    def choose(self, prompts: list[list[dict[str, str]]], seeds: list[int]) -> list[_Reply]:
        from autoworld.generator.transformers_backend import check_context

        out: list[_Reply] = []
        for lo in range(0, len(prompts), self.cfg.batch_size):
            part = prompts[lo:lo + self.cfg.batch_size]
            chunk = [self._ids(p) for p in part]
            check_context(self.model, max(len(c) for c in chunk), LLMAgentError, "model: ")
            limit = self._system_prefix_len(part[0][0]["content"])
            scores = self._last_logits(chunk, limit).index_select(1, self.choice_ids)  # (b, 7)
            if self.cfg.temperature <= 0:
                picks = scores.argmax(dim=1).tolist()
            else:
                picks = []
                for row, seed in zip(scores, seeds[lo:lo + len(chunk)], strict=True):
                    gen = torch.Generator().manual_seed(int(seed) & 0x7FFF_FFFF_FFFF)
                    probs = torch.softmax(row / self.cfg.temperature, dim=0)
                    picks.append(int(torch.multinomial(probs, 1, generator=gen)))
            out += [_Reply(text=str(a), action=int(a), prompt_tokens=len(c), completion_tokens=1)
                    for a, c in zip(picks, chunk, strict=True)]
        return out

    def close(self) -> None:
        pass
