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

The configuration lives in ``llm_config``, the text observations, prompts and ``parse_action``
in ``llm_prompts`` and the two backends in ``llm_backends``; the public names of the first two
are imported here too.

Example:
    >>> from autoworld.learners.llm_agent import parse_action
    >>> parse_action('{"action": "north"}', ["east", "south", "west", "north"])
    3
    >>> parse_action("I am not sure", ["east", "south", "west", "north"]) is None
    True
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from autoworld.learners.llm_backends import _OpenAIChooser, _TransformersChooser
from autoworld.learners.llm_config import (
    NOOP_ACTION,
    NUM_ACTIONS,
    AgentStats,
    LLMAgentConfig,
    LLMAgentError,
)
from autoworld.learners.llm_prompts import (
    ACTIONS,
    FACING,
    _carrying,
    action_table,
    observation_texts,
    parse_action,
    system_prompt,
    user_prompt,
)

# The language agents' public names, with those defined in llm_config, llm_prompts and
# llm_backends: callers imported them from here before those modules existed.
__all__ = [
    "ACTIONS", "NOOP_ACTION", "NUM_ACTIONS", "AgentStats", "LLMAgent", "LLMAgentConfig",
    "LLMAgentError", "action_table", "evaluate_agent", "method_config", "observation_texts",
    "parse_action", "run_method", "system_prompt", "user_prompt",
]


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
                 total: float, carrying: bool | None = None, facing: str | None = None
                 ) -> list[dict[str, str]]:
        """The chat messages of one decision."""
        user = user_prompt(step, self.spec.max_steps, observation, history, total, carrying,
                           facing)
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
    from autoworld.envs.grid.scores import normalized_scores
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
        if spec.component("egocentric") is not None:  # the view turns with the agent
            dirs = eng.state.dir[torch.as_tensor(rows, dtype=torch.long)].tolist()
            facing: list[str | None] = [FACING[int(d)] for d in dirs]
        else:
            facing = [None] * len(rows)
        prompts = [agent.messages(t, txt, list(hist[i]), float(total[i]), c, f)
                   for i, txt, c, f in zip(rows, texts, carry, facing, strict=True)]
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
    # a language agent learns nothing here: its decisions (in ``extra["total"]``) score it
    out = MethodResult(method=name, world=spec.name, seed=seed, steps=steps, env_steps=0,
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
