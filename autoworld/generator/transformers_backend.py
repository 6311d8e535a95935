"""The ``transformers`` backend: a local Hugging Face causal LM with grammar-constrained decoding.

Decoding is constrained by llguidance: the WorldSpec JSON schema is compiled into a grammar, and
at every step a logits processor masks the tokens the grammar forbids, so the text always parses
as JSON of the schema's shape. Two grammar schemas are offered:

- ``"full"`` (default): the WorldSpec schema, with each factor list rewritten so that its first
  item is the one required movement scheme (transition) or view (observation). JSON schema
  cannot say "each kind at most once" or "line_of_sight needs egocentric"; those cross-field
  rules are left to the validator and the repair loop.
- ``"compact"``: a sub-schema whose every instance is a valid WorldSpec: name, one movement
  scheme, one view and one reward component, each with its default parameters. Its language is
  finite (no free-length numbers or strings), so even a tiny or untrained model finishes within
  a small token budget; tests and small models use it.

Requires the ``llm`` extra (transformers, tokenizers, llguidance), imported lazily.
"""

from __future__ import annotations

import copy
import inspect
import json
import time
from pathlib import Path
from typing import Any, Literal

from autoworld.envs.grid.components.registry import REGISTRY
from autoworld.errors import GenerationError
from autoworld.generator.base import Proposal
from autoworld.generator.prompt import chat_messages, parse_reply
from autoworld.spec import spec_json_schema

MOVEMENTS = ("cardinal", "turn_forward")
VIEWS = ("full_grid", "egocentric")
# No free whitespace in constrained output: an untrained model could emit spaces forever.
JSON_OPTIONS = {"whitespace_flexible": False, "coerce_one_of": True}


def load_causal_lm(transformers: Any, path: str, device: Any, error: type[Exception],
                   prefix: str = "") -> tuple[Any, Any]:
    """(tokenizer, model) of the local Hugging Face model folder ``path``, the model on
    ``device`` in eval mode; a folder that is not a causal LM raises ``error`` (message
    ``prefix`` + what to fix). Shared by the generator's and the language agent's backends."""
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        model = transformers.AutoModelForCausalLM.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - OSError, ValueError, and safetensors' own error
        # (unreadable weights, e.g. a git-lfs pointer): all mean "not a usable model folder"
        hint = "; are the weights whole (git lfs pull)?" if "safetensor" in \
            type(exc).__name__.lower() else ""
        raise error(f"{prefix}cannot load a causal LM from {path}: "
                    f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}{hint}") from None
    model.to(device).eval()
    return tokenizer, model


def context_length(model: Any) -> int | None:
    """The most tokens ``model`` attends over (learned position tables), or None when its config
    names no limit."""
    cfg = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_context(model: Any, prompt_tokens: int, error: type[Exception], prefix: str = ""
                  ) -> int | None:
    """The tokens left for a reply after a prompt of ``prompt_tokens``; a prompt that fills the
    model's context raises ``error`` naming both lengths (it used to be a bare IndexError in the
    position embedding)."""
    limit = context_length(model)
    if limit is None:
        return None
    if prompt_tokens >= limit:
        raise error(f"{prefix}the prompt is {prompt_tokens} tokens and the model's context is "
                    f"{limit}; use a model with a longer context")
    return limit - prompt_tokens


def chat_token_ids(tokenizer: Any, messages: list[dict[str, str]], plain_suffix: str
                   ) -> list[int]:
    """Token ids of a chat prompt: the tokenizer's chat template with the generation prompt, or,
    for a model without one, the messages' contents joined by blank lines plus ``plain_suffix``."""
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # newer versions return an encoding
            ids = ids["input_ids"]
        return list(ids)
    text = "\n\n".join(m["content"] for m in messages) + plain_suffix
    return list(tokenizer(text)["input_ids"])


def _kinds_schema(kinds: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Components of the given kinds with default parameters: ``{"kind": "<name>"}``."""
    return {"type": "object", "additionalProperties": False, "required": ["kind"],
            "properties": {"kind": {"enum": list(kinds)}}}


def compact_schema() -> dict[str, Any]:
    """A finite sub-schema of WorldSpec: every instance parses with ``parse_spec``."""
    rewards = [n for n, c in REGISTRY.items() if c.factor == "reward"]

    def one(kinds: list[str] | tuple[str, ...]) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "maxItems": 1, "items": _kinds_schema(kinds)}

    return {
        "type": "object", "additionalProperties": False,
        "required": ["name", "transition", "observation", "reward"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9]{0,11}$"},
            "transition": one(MOVEMENTS),
            "observation": one(VIEWS),
            "reward": one(rewards),
        },
    }


def full_schema() -> dict[str, Any]:
    """The WorldSpec schema with the required movement scheme and view placed first."""
    schema = copy.deepcopy(spec_json_schema())
    props = schema["properties"]
    for factor, firsts in (("transition", MOVEMENTS), ("observation", VIEWS)):
        items = props[factor]["items"]
        variants = items.get("oneOf") or items.get("anyOf") or []
        refs = {v["$ref"].rsplit("/", 1)[-1]: v for v in variants if "$ref" in v}
        by_kind = {}
        for name, ref in refs.items():
            kind = schema["$defs"][name]["properties"]["kind"].get("const")
            by_kind[kind or schema["$defs"][name]["properties"]["kind"].get("default")] = ref
        first = [by_kind[k] for k in firsts if k in by_kind]
        rest = [r for k, r in by_kind.items() if k not in firsts]
        props[factor] = {"type": "array", "minItems": 1,
                         "maxItems": props[factor].get("maxItems", 12),
                         "prefixItems": [{"anyOf": first}],
                         "items": {"anyOf": rest} if rest else False}
    return schema


def _import_llm() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise GenerationError("the transformers backend needs the `llm` extra; install it with "
                              "`pip install 'autoworld[llm]'`") from exc
    return torch, transformers


def _import_llguidance() -> Any:
    try:
        import llguidance
        import llguidance.hf
    except ImportError as exc:
        raise GenerationError("constrained decoding needs llguidance; install the `llm` extra "
                              "(`pip install 'autoworld[llm]'`) or pass constrained=False") from exc
    return llguidance


class GrammarLogitsProcessor:
    """A transformers-style logits processor that masks tokens the grammar forbids.

    It follows the ``LogitsProcessor`` call convention ``(input_ids, scores) -> scores`` for one
    sequence; ``advance(token)`` feeds the chosen token back to the llguidance matcher.
    """

    def __init__(self, matcher: Any, vocab_size: int) -> None:
        self.matcher = matcher
        self.vocab_size = vocab_size

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np
        import torch

        bits = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(bits, bitorder="little").astype(bool)
        n = scores.shape[-1]
        mask = np.zeros(n, dtype=bool)
        k = min(n, allowed.shape[0], self.vocab_size)
        mask[:k] = allowed[:k]
        if not mask.any():
            raise GenerationError(f"grammar allows no token: {self.matcher.get_error() or '?'}")
        return scores.masked_fill(~torch.from_numpy(mask).to(scores.device), float("-inf"))

    def advance(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise GenerationError(f"grammar rejected token {token}: {self.matcher.get_error()}")

    @property
    def done(self) -> bool:
        return self.matcher.is_stopped()


class TransformersBackend:
    """Proposes specs with a local causal LM (a Hugging Face model directory).

    Args:
        model_path: a folder with the model's config, weights and a fast tokenizer.
        max_new_tokens: decoding budget per proposal.
        constrained: grammar-constrained decoding (False only as a negative control).
        device: torch device for the model.
        grammar: ``"full"`` or ``"compact"`` (see the module doc), or a JSON schema mapping.
        temperature: sampling temperature (0: greedy).
        schema_in_prompt: put the JSON schema in the prompt; default: only when unconstrained
            (the grammar already enforces it, and it costs thousands of prompt tokens).
    """

    name = "transformers"

    def __init__(self, model_path: str | Path, max_new_tokens: int = 1024,
                 constrained: bool = True, device: str = "cpu",
                 grammar: Literal["full", "compact"] | dict[str, Any] = "full",
                 temperature: float = 1.0, schema_in_prompt: bool | None = None) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_dir():
            raise GenerationError(f"no model folder at {self.model_path}; pass a local Hugging "
                                  "Face model directory (config.json, weights, tokenizer)")
        self.max_new_tokens = int(max_new_tokens)
        self.constrained = constrained
        self.device = device
        self.temperature = float(temperature)
        self.schema_in_prompt = (not constrained) if schema_in_prompt is None else schema_in_prompt
        if isinstance(grammar, dict):
            self.schema = grammar
        elif grammar == "full":
            self.schema = full_schema()
        elif grammar == "compact":
            self.schema = compact_schema()
        else:
            raise GenerationError(f"unknown grammar {grammar!r}; use 'full' or 'compact'")
        self._model: Any = None
        self._tokenizer: Any = None
        self._ll_tokenizer: Any = None
        self._grammar: str | None = None

    # ------------------------------------------------------------------ loading
    def _load(self) -> None:
        if self._model is not None:
            return
        _, transformers = _import_llm()
        self._tokenizer, self._model = load_causal_lm(transformers, self.model_path,
                                                      self.device, GenerationError)
        if self.constrained:
            llguidance = _import_llguidance()
            try:
                self._ll_tokenizer = llguidance.hf.from_tokenizer(self._tokenizer)
            except ValueError as exc:
                raise GenerationError(
                    f"constrained decoding needs a fast tokenizer: {exc}") from None
            self._grammar = llguidance.LLMatcher.grammar_from_json_schema(
                json.dumps(self.schema), overrides=JSON_OPTIONS)
            err = llguidance.LLMatcher.validate_grammar(self._grammar, self._ll_tokenizer)
            if err and not err.startswith("WARNING"):
                raise GenerationError(f"the WorldSpec grammar does not compile: {err}")

    def _prompt_ids(self, theme: str, feedback: str | None,
                    parent: dict[str, Any] | None) -> list[int]:
        messages = chat_messages(theme, feedback, parent, include_schema=self.schema_in_prompt)
        return chat_token_ids(self._tokenizer, messages, "\n\n")

    # ------------------------------------------------------------------ decoding
    def propose(self, theme: str, seed: int, feedback: str | None = None,
                parent: dict[str, Any] | None = None) -> Proposal:
        torch, _ = _import_llm()
        start = time.perf_counter()
        self._load()
        prompt = self._prompt_ids(theme, feedback, parent)
        room = check_context(self._model, len(prompt), GenerationError)
        max_new = self.max_new_tokens if room is None else min(self.max_new_tokens, room)
        processor = None
        if self.constrained:
            llguidance = _import_llguidance()
            matcher = llguidance.LLMatcher(self._ll_tokenizer, self._grammar, log_level=0)
            if matcher.is_error():
                raise GenerationError(f"grammar matcher failed: {matcher.get_error()}")
            processor = GrammarLogitsProcessor(matcher, len(self._tokenizer))
        gen = torch.Generator(device="cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF)
        eos = self._tokenizer.eos_token_id
        out: list[int] = []
        ids = torch.tensor([prompt], dtype=torch.long, device=self.device)
        # transformers 5 renamed ``past_key_values`` to ``cache``; accept both.
        params = inspect.signature(self._model.forward).parameters
        cache_arg = "cache" if "cache" in params else "past_key_values"
        past = None
        with torch.no_grad():
            for _ in range(max_new):
                res = self._model(input_ids=ids, use_cache=True, **{cache_arg: past})
                past = getattr(res, "cache", None)
                if past is None:
                    past = res.past_key_values
                scores = res.logits[0, -1].float().cpu()  # (V,)
                if processor is not None:
                    scores = processor(None, scores)
                if self.temperature <= 0:
                    token = int(scores.argmax())
                else:
                    probs = torch.softmax(scores / self.temperature, dim=-1)
                    token = int(torch.multinomial(probs, 1, generator=gen))
                if processor is not None:
                    processor.advance(token)
                if token == eos:
                    break
                out.append(token)
                if processor is not None and processor.done:
                    break
                ids = torch.tensor([[token]], dtype=torch.long, device=self.device)
        text = self._tokenizer.decode(out, skip_special_tokens=True)
        return Proposal(text=text, data=parse_reply(text), prompt_tokens=len(prompt),
                        completion_tokens=len(out), seconds=time.perf_counter() - start)
