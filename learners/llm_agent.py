"""Language agents: a policy that is a large language model acting on text observations.

An ``LLMAgent`` reads each env's observation as text (the world's ``text`` observation when it
has one, otherwise the agent's view ``image`` written with the ASCII level characters), builds a
prompt that states the world (its description and the docs of its components), the map legend,
the action meanings, the step, a short history and the current observation, and turns the reply
into one of the 7 grid actions. Two backends:

- ``openai``: any OpenAI-compatible chat endpoint through ``autoworld.generator.llm_client``
  (OpenAI, vLLM, Ollama, llama.cpp server). The reply is asked for as JSON of the schema
  ``{"action": <one action name>}`` (structured output); the prompts of all envs alive at a step
  are sent concurrently by a bounded thread pool.
- ``transformers``: a local Hugging Face causal LM. The prompts of all envs alive at a step go
  through the model in one forward pass, and the choice is constrained: the next token is
  restricted to the action numbers ``0`` .. ``6`` (argmax, or sampled with a temperature), so
  a reply can never be malformed. The keys and values of the system message (shared by every
  prompt) are computed once and reused; a step runs only the per-env suffixes.

A reply that names no action (garbage, refusals, several actions) is never an error: the agent
takes the **fallback action** (``LLMAgentConfig.fallback``: a seeded uniformly random action by
default, so that a model that never answers scores like the random policy; ``"noop"`` is action
6, which is ``done`` under ``turn_forward`` and ``toggle`` under ``cardinal``; or a fixed action
index) and counts a parse failure. A request that fails after the client's retries counts as a
request failure and also falls back; a step at which every request failed raises
``LLMAgentError`` (the endpoint is down, not the model confused).

Evaluation is oracle-normalized exactly like ``learners.evaluation.evaluate`` (the same levels,
the same oracle values, ``oracle.normalized_scores``), but only envs whose first episode is still
running are queried, since every query is a model call.

Methods: ``llm:<model>`` (an endpoint serving ``<model>``; ``$AUTOWORLD_LLM_BASE_URL`` or
``--llm-base-url``) and ``llm-hf:<model dir>`` (a local model), resolved by
``learners.methods.get_method``. They learn nothing from the budget: the initial and final
scores are the same evaluation.

Example:
    >>> from autoworld.learners.llm_agent import parse_action
    >>> parse_action('{"action": "north"}', ["east", "south", "west", "north"])
    3
    >>> parse_action("I am not sure", ["east", "south", "west", "north"]) is None
    True
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from autoworld.errors import AutoworldError, GenerationError

log = logging.getLogger(__name__)

NUM_ACTIONS = 7
NOOP_ACTION = 6

# (name, meaning) per movement scheme, in action order.
ACTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "turn_forward": (
        ("left", "turn 90 degrees to the left"),
        ("right", "turn 90 degrees to the right"),
        ("forward", "move one cell forward, in the direction the agent faces"),
        ("pickup", "pick up the object in the cell in front"),
        ("drop", "drop the carried object into the cell in front"),
        ("toggle", "interact with the cell in front (open a locked door while carrying a key)"),
        ("done", "do nothing"),
    ),
    "cardinal": (
        ("east", "face east (right on the map) and move one cell"),
        ("south", "face south (down on the map) and move one cell"),
        ("west", "face west (left on the map) and move one cell"),
        ("north", "face north (up on the map) and move one cell"),
        ("pickup", "pick up the object in the cell in front"),
        ("drop", "drop the carried object into the cell in front"),
        ("toggle", "interact with the cell in front (open a locked door while carrying a key)"),
    ),
}


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


# ====================================================================== text observations
def observation_texts(obs: dict[str, torch.Tensor], rows: np.ndarray | None = None) -> list[str]:
    """The text observation of envs ``rows`` (default all): the ``text`` output of the world
    when present, else the view ``image`` drawn with the ASCII level characters."""
    from autoworld.envs.grid.components.observation import image_to_text

    if "text" in obs:
        codes = obs["text"]
        sel = codes if rows is None else codes[torch.as_tensor(rows, dtype=torch.long)]
        arr = sel.cpu().numpy()  # (b, R, C) uint8 ASCII
        arr = np.where(arr == 0, ord(" "), arr).astype(np.uint8)
        return ["\n".join(bytes(r).decode("ascii") for r in env) for env in arr]
    if "image" in obs:
        img = obs["image"]
        sel = img if rows is None else img[torch.as_tensor(rows, dtype=torch.long)]
        return [image_to_text(env) for env in sel.cpu().numpy()]
    raise LLMAgentError(f"a language agent needs an 'image' or 'text' observation; this world "
                        f"gives {sorted(obs)}")


def _carrying(obs: dict[str, torch.Tensor], rows: np.ndarray) -> list[bool | None]:
    """Whether each env's agent carries something (from ``agent_features``), None if unknown."""
    feats = obs.get("features")
    if feats is None:
        return [None] * len(rows)
    return [bool(x > 0.5) for x in feats[torch.as_tensor(rows, dtype=torch.long), 6].cpu()]


# ====================================================================== prompts
def action_table(spec) -> tuple[tuple[str, str], ...]:
    """(name, meaning) of the 7 actions under ``spec``'s movement scheme."""
    return ACTIONS["turn_forward" if spec.component("turn_forward") is not None else "cardinal"]


def _legend() -> str:
    from autoworld.envs.grid.symbols import CHARS, Cell

    seen: dict[str, list[str]] = {}
    for cell, ch in CHARS.items():
        label = Cell(cell).name.lower().replace("_", " ")
        seen.setdefault(ch, []).append(label)
    return "\n".join(f"{ch!r}: {' / '.join(names)}" for ch, names in seen.items())


def system_prompt(spec, reply: Literal["json", "number"] = "json") -> str:
    """The system message: the world, its rules (component docs), legend, actions, reply form."""
    from autoworld.envs.grid.components.registry import REGISTRY

    rules = []
    for factor in (spec.transition, spec.observation, spec.reward):
        for comp in factor:
            cls = REGISTRY.get(comp.kind)
            doc = " ".join(cls.doc().split()) if cls is not None else ""
            params = {k: v for k, v in comp.model_dump().items() if k != "kind"}
            rules.append(f"- {comp.kind}{' ' + json.dumps(params) if params else ''}: {doc}")
    actions = "\n".join(f"{i}. {name}: {meaning}"
                        for i, (name, meaning) in enumerate(action_table(spec)))
    if reply == "json":
        form = ('Reply with JSON only, exactly {"action": "<name>"} where <name> is one of: '
                + ", ".join(n for n, _ in action_table(spec)) + ".")
    else:
        form = "Reply with the number of one action only."
    if spec.component("egocentric") is not None:
        where = ("The observation is the agent's own view: the agent stands in the middle of the "
                 "bottom row, facing up (the top of the view is straight ahead).")
    else:
        where = ("The agent is drawn as an arrow pointing where it faces: ^ north, > east, "
                 "v south, < west.")
    return (f"You are the agent in a grid world called {spec.name}. {spec.description}\n"
            f"An episode ends when the goal is reached, the agent dies, or after "
            f"{spec.max_steps} steps. Maximize the total reward.\n\n"
            f"# Rules of this world (its components)\n" + "\n".join(rules)
            + f"\n\n# Map legend (character: meaning)\n{_legend()}\n{where}\n\n"
            f"# Actions\n{actions}\n\n{form}")


def user_prompt(step: int, max_steps: int, observation: str,
                history: list[tuple[int, str, float]], total: float,
                carrying: bool | None = None) -> str:
    """The user message of one decision: the step, recent history and the observation."""
    lines = [f"Step {step + 1} of {max_steps}. Total reward so far: {total:g}."]
    if history:
        lines.append("Recent steps: " + "; ".join(f"step {t + 1}: {name} -> reward {r:g}"
                                                   for t, name, r in history) + ".")
    if carrying is not None:
        lines.append("You are carrying an object." if carrying else "Your hands are empty.")
    lines.append(f"Observation:\n<observation>\n{observation}\n</observation>")
    lines.append("Your action?")
    return "\n".join(lines)


_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)


def _match_value(value: Any, names: list[str]) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < len(names) else None
    if isinstance(value, str):
        v = value.strip().lower()
        if v in names:
            return names.index(v)
        if v.isdigit() and int(v) < len(names):
            return int(v)
    return None


def parse_action(text: str, names: list[str] | tuple[str, ...]) -> int | None:
    """The action a reply names, or None.

    Accepted, in order: a JSON object with an ``action`` field (a name or an index), anywhere in
    the reply; a reply that mentions exactly one action name as a whole word; a reply that is
    just an action index. Anything else (no name, several names, out of range) is None.
    """
    names = [n.lower() for n in names]
    if not isinstance(text, str) or not text.strip():
        return None
    candidates = [text.strip(), *_JSON_OBJECT.findall(text)]
    for chunk in candidates:
        try:
            obj = json.loads(chunk)
        except ValueError:
            continue
        if isinstance(obj, dict) and "action" in obj:
            hit = _match_value(obj["action"], names)
            if hit is not None:
                return hit
    words = set(re.findall(r"[a-z]+", text.lower()))
    named = [i for i, n in enumerate(names) if n in words]
    if len(named) == 1:
        return named[0]
    stripped = text.strip().strip(".").strip()
    if stripped.isdigit() and int(stripped) < len(names):
        return int(stripped)
    return None


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
        except GenerationError as exc:
            log.warning("language agent request failed: %s", exc)
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
        self.cfg = cfg
        try:
            self.tok = transformers.AutoTokenizer.from_pretrained(cfg.model)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(cfg.model)
        except (OSError, ValueError) as exc:
            raise LLMAgentError(f"model: cannot load a causal LM from {cfg.model}: "
                                f"{' '.join(str(exc).split())[:300]}") from None
        self.model.to(cfg.device).eval()
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
        tok = self.tok
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        text = "\n\n".join(m["content"] for m in messages) + "\n\nAction number: "
        return list(tok(text)["input_ids"])

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
        out: list[_Reply] = []
        for lo in range(0, len(prompts), self.cfg.batch_size):
            part = prompts[lo:lo + self.cfg.batch_size]
            chunk = [self._ids(p) for p in part]
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


# ====================================================================== the agent
class LLMAgent:
    """A language-model policy for one world.

    Args:
        spec: the world.
        config: backend, model and acting rules.
        seed: seeds the fallback action and the per-request seeds.

    Use as a context manager (or call ``close``) to release the HTTP thread pool.
    """

    def __init__(self, spec, config: LLMAgentConfig | None = None, seed: int = 0) -> None:
        self.spec = spec
        self.config = config or LLMAgentConfig()
        self.names = [n for n, _ in action_table(spec)]
        backend = (_OpenAIChooser if self.config.backend == "openai"
                   else _TransformersChooser)
        self.chooser = backend(self.config, self.names)
        self.system = system_prompt(spec, self.chooser.reply)
        self.stats = AgentStats()
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)

    def __enter__(self) -> LLMAgent:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.chooser.close()

    @property
    def model_name(self) -> str:
        return self.chooser.model_name

    def fallback_action(self) -> int:
        fb = self.config.fallback
        if fb == "random":
            return int(self.rng.integers(NUM_ACTIONS))
        return NOOP_ACTION if fb == "noop" else int(fb)

    def messages(self, step: int, observation: str, history: list[tuple[int, str, float]],
                 total: float, carrying: bool | None = None) -> list[dict[str, str]]:
        """The chat messages of one decision."""
        user = user_prompt(step, self.spec.max_steps, observation, history, total, carrying)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def act(self, prompts: list[list[dict[str, str]]], step: int) -> list[int]:
        """One action per prompt (fallback actions for unusable replies)."""
        if not prompts:
            return []
        seeds = [(self.seed * 1_000_003 + step * 4099 + i) & 0x7FFF_FFFF
                 for i in range(len(prompts))]
        start = time.perf_counter()
        replies = self.chooser.choose(prompts, seeds)
        st = self.stats
        st.seconds += time.perf_counter() - start
        st.requests += len(replies)
        st.decisions += len(replies)
        if all(r.text is None for r in replies):
            raise LLMAgentError(f"every request of step {step + 1} to the language model failed "
                                "(see the log); check the endpoint ($AUTOWORLD_LLM_BASE_URL or "
                                "--llm-base-url), the model name and the API key")
        actions = []
        for r in replies:
            st.prompt_tokens += r.prompt_tokens
            st.completion_tokens += r.completion_tokens
            if r.text is None:
                st.request_failures += 1
                actions.append(self.fallback_action())
                continue
            a = r.action if r.action is not None else parse_action(r.text, self.names)
            if a is None:
                st.parse_failures += 1
                a = self.fallback_action()
            actions.append(int(a))
        return actions


def evaluate_agent(agent: LLMAgent, spec=None, split: Literal["validation", "test"] =
                   "validation", episodes_per_level: int = 1, seed: int = 0,
                   device: str | torch.device = "cpu"):
    """Roll ``agent`` out on every level of ``split``, oracle-normalized.

    The scores are those of ``learners.evaluation.evaluate`` (same levels, same engine seeding,
    same oracle values and formula); only envs still in their first episode are queried.

    Returns:
        ``(EvalResult, AgentStats)``: the scores and what this evaluation cost (a delta).
    """
    from autoworld.envs.grid.engine import GridEngine
    from autoworld.envs.grid.oracle import normalized_scores
    from autoworld.learners.evaluation import EvalResult, oracle_values

    spec = spec if spec is not None else agent.spec
    before = agent.stats.model_copy()
    opt, rnd = oracle_values(spec, split)
    L, E = len(opt), int(episodes_per_level)
    B = L * E
    eng = GridEngine(spec, num_envs=B, device=device, seed=seed, split=split, final_obs=False)
    obs = eng.reset(level_ids=torch.arange(B, device=eng.device) % L)
    total = np.zeros(B, dtype=np.float64)
    alive = np.ones(B, dtype=bool)
    success = np.zeros(B, dtype=bool)
    hist: list[deque] = [deque(maxlen=agent.config.history) for _ in range(B)]
    for t in range(spec.max_steps):
        rows = np.flatnonzero(alive)
        texts = observation_texts(obs, rows)
        carry = _carrying(obs, rows)
        prompts = [agent.messages(t, txt, list(hist[i]), float(total[i]), c)
                   for i, txt, c in zip(rows, texts, carry, strict=True)]
        chosen = agent.act(prompts, t)
        actions = torch.full((B,), NOOP_ACTION, dtype=torch.long)
        actions[torch.as_tensor(rows, dtype=torch.long)] = torch.tensor(chosen, dtype=torch.long)
        obs, reward, terminated, truncated, _ = eng.step(actions.to(eng.device))
        r = reward.double().cpu().numpy()
        term, trunc = terminated.cpu().numpy(), truncated.cpu().numpy()
        for i, a in zip(rows, chosen, strict=True):
            hist[i].append((t, agent.names[a], float(r[i])))
        total += np.where(alive, r, 0.0)
        success |= alive & term & (r > 0)
        alive &= ~(term | trunc)
        if not alive.any():
            break
    returns = total.reshape(E, L)  # env i runs level i % L
    level_returns = returns.mean(axis=0)
    ratio, gain = normalized_scores(level_returns, np.asarray(opt), np.asarray(rnd))
    res = EvalResult(world=spec.name, split=split, episodes=B,
                     mean_return=math.fsum(total.tolist()) / B, success=float(success.mean()),
                     normalized=float(np.mean(ratio)), normalized_gain=float(np.mean(gain)),
                     level_returns=[float(x) for x in level_returns], optimal_returns=opt,
                     random_returns=rnd)
    after = agent.stats
    delta = AgentStats(**{k: getattr(after, k) - getattr(before, k)
                          for k in AgentStats.model_fields})
    return res, delta


# ====================================================================== the method family
def method_config(name: str, **overrides: Any) -> LLMAgentConfig:
    """The agent config of a method name: ``llm:<model>`` or ``llm-hf:<model dir>``."""
    family, _, model = name.partition(":")
    if family not in ("llm", "llm-hf") or not model:
        raise LLMAgentError(f"method {name!r}: a language agent is named llm:<model> (an "
                            "OpenAI-compatible endpoint) or llm-hf:<model dir> (a local model)")
    backend = "openai" if family == "llm" else "transformers"
    return LLMAgentConfig(backend=backend, model=model,
                          **{k: v for k, v in overrides.items() if v is not None})


def run_method(name: str, world, steps: int = 0, num_envs: int = 1, seed: int = 0,
               device: str = "cpu", run_dir=None, options=None,
               config: LLMAgentConfig | None = None, **overrides: Any):
    """Evaluate the language agent ``name`` on ``world`` (the ``MethodSpec.run`` of the family).

    ``steps`` and ``num_envs`` are accepted for the common signature: an in-context policy learns
    nothing from a budget. The validation score is both the initial and the final score.
    ``overrides`` (``base_url``, ``api_key``, ``max_workers``, ...) update the config.
    """
    from autoworld.learners.methods import MethodOptions, MethodResult, _world

    spec = _world(world)
    cfg = config or method_config(name, **overrides)
    if cfg.backend == "transformers" and device != "cpu" and "device" not in overrides:
        cfg = cfg.model_copy(update={"device": device})
    episodes = cfg.episodes_per_level if options is None else options.eval_episodes
    options = options or MethodOptions()
    start = time.perf_counter()
    with LLMAgent(spec, cfg, seed=seed) as agent:
        res, stats = evaluate_agent(agent, spec, "validation", episodes, seed=seed,
                                    device=device)
        test = None
        if options.test_eval:
            test = evaluate_agent(agent, spec, "test", episodes, seed=seed, device=device)[0]
        model = agent.model_name
        total = agent.stats
    env_steps = int(total.decisions)
    out = MethodResult(method=name, world=spec.name, seed=seed, steps=steps, env_steps=env_steps,
                       initial_score=res.normalized, score=res.normalized,
                       normalized_gain=res.normalized_gain, mean_return=res.mean_return,
                       success=res.success,
                       initial_test_score=None if test is None else test.normalized,
                       test_score=None if test is None else test.normalized,
                       seconds=time.perf_counter() - start,
                       extra={"backend": cfg.backend, "model": model,
                              "episodes_per_level": episodes,
                              "validation": stats.model_dump(), "total": total.model_dump(),
                              "parse_failure_rate": (total.parse_failures
                                                     / max(1, total.decisions))})
    if run_dir is not None:
        from autoworld.learners.checkpoint import atomic_write_text

        path = Path(run_dir)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path / "result.json", out.model_dump_json(indent=1) + "\n")
    return out
