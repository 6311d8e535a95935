"""Language agents, offline: loopback chat endpoint with a scripted policy; a tiny local LM."""

from __future__ import annotations

import functools
import json
import re
import socket
import threading
import time

import pytest
import torch

from autoworld.envs.catalogue import load_world
from autoworld.envs.grid.components.observation import image_to_text
from autoworld.envs.grid.engine import GridEngine
from autoworld.envs.grid.levels import bank
from autoworld.envs.grid.oracle import solve
from autoworld.learners.llm_agent import (
    LLMAgent,
    LLMAgentConfig,
    LLMAgentError,
    action_table,
    evaluate_agent,
    method_config,
    observation_texts,
    parse_action,
    system_prompt,
)
from autoworld.learners.methods import METHODS, MethodError, get_method
from autoworld.spec import parse_spec
from tests.chat_server import LoopbackChatServer

OBS = re.compile(r"<observation>\n(.*?)\n</observation>", re.DOTALL)
CARDINAL = [n for n, _ in action_table(load_world("Empty-6x6"))]


class ScriptedChatServer(LoopbackChatServer):
    """An OpenAI chat-completions endpoint on 127.0.0.1 whose replies come from ``policy``:
    a function of the request body returning the assistant text. Tracks concurrency."""

    def __init__(self, policy, delay: float = 0.0) -> None:
        super().__init__()
        self.policy = policy
        self.delay = delay
        self.bodies: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def reply(self, path: str, body: dict) -> str:
        with self.lock:
            self.bodies.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.delay:
            time.sleep(self.delay)
        content = self.policy(body)
        with self.lock:
            self.in_flight -= 1
        return content


def oracle_lookup(world: str, split: str = "validation") -> dict[str, str]:
    """Observation text -> the oracle's action name, along the oracle's plan of every level."""
    spec = load_world(world)
    b = bank(spec, split)
    names = [n for n, _ in action_table(spec)]
    table: dict[str, str] = {}
    for i in range(len(b)):
        plan = solve(spec, b.level(i)).plan
        assert plan, f"the oracle has no plan for level {i}"
        eng = GridEngine(spec, num_envs=1, split=split, final_obs=False)
        obs = eng.reset(level_ids=torch.tensor([i]))
        for a in plan:
            table[observation_texts(obs)[0]] = names[a]
            obs, *_ = eng.step(torch.tensor([a]))
    return table


def oracle_policy(table: dict[str, str]):
    def reply(body: dict) -> str:
        text = OBS.search(body["messages"][-1]["content"]).group(1)
        return json.dumps({"action": table.get(text, "north")})

    return reply


@pytest.fixture(scope="module")
def empty_oracle() -> dict[str, str]:
    return oracle_lookup("Empty-6x6")


# ------------------------------------------------------------------ parsing and observations
@pytest.mark.parametrize(("reply", "expected"), [
    ('{"action": "north"}', 3),
    ('{"action": 2}', 2),
    ('Sure! {"action": "EAST"} is best.', 0),
    ("I will go south.", 1),
    ("5", 5),
    ("toggle", 6),
    ("", None),
    ("go east or maybe west", None),  # ambiguous: two names
    ('{"action": "fly"}', None),
    ('{"action": 9}', None),
    ("42", None),
    ("\x00\xff garbage ]]}", None),
])
def test_parse_action(reply, expected):
    assert parse_action(reply, CARDINAL) == expected


def test_text_observation_is_used_when_the_world_has_one():
    spec = load_world("NoisyMaze-9x9")
    assert spec.component("text") is not None
    eng = GridEngine(spec, num_envs=3, split="validation", final_obs=False)
    obs = eng.reset()
    texts = observation_texts(obs)
    imgs = [image_to_text(x) for x in obs["image"].numpy()]
    assert texts == imgs  # the text output writes the image's characters
    assert observation_texts(obs, [2]) == texts[2:]
    # a world without the text output falls back to the view image
    empty = GridEngine(load_world("Empty-6x6"), num_envs=1, split="validation", final_obs=False)
    text = observation_texts(empty.reset())[0]
    assert text.splitlines()[0] == "######" and text.count("G") == 1
    with pytest.raises(LLMAgentError, match="'image' or 'text'"):
        observation_texts({"features": torch.zeros(1, 8)})


def test_system_prompt_states_the_world_and_its_actions():
    ego = system_prompt(load_world("DoorKey-8x8"))
    assert "keys_doors" in ego and "0. left" in ego and "own view" in ego
    assert '"left", "right"' not in ego and "forward, pickup" in ego  # the JSON reply's names
    full = system_prompt(load_world("Empty-6x6"), reply="number")
    assert "0. east" in full and "arrow" in full and "number of one action" in full


def test_method_family_is_registered():
    assert "llm:some-model" not in METHODS  # families do not pollute `--methods all`
    spec = get_method("llm:some-model")
    assert spec.name == "llm:some-model" and spec.component == "LLM prompt"
    assert method_config("llm:m").backend == "openai"
    assert method_config("llm-hf:/x").backend == "transformers"
    with pytest.raises(MethodError, match="llm:<model>"):
        get_method("llm:")
    with pytest.raises(MethodError, match="unknown method"):
        get_method("nope:x")
    with pytest.raises(ValueError, match="fallback"):
        LLMAgentConfig(fallback=9)


# ------------------------------------------------------------------ loopback endpoint
def test_oracle_scripted_endpoint_solves_every_level(empty_oracle):
    with ScriptedChatServer(oracle_policy(empty_oracle), delay=0.01) as server:
        res = get_method("llm:oracle-bot").run("Empty-6x6", seed=0, base_url=server.url,
                                               api_key="k", max_workers=4)
    assert res.score == pytest.approx(1.0) and res.normalized_gain == pytest.approx(1.0)
    assert res.success == 1.0 and res.initial_score == res.score
    val = res.extra["validation"]
    # 5 levels solved in 3, 2, 3, 4, 5 moves: one request per alive env per step
    assert val["requests"] == val["decisions"] == len(server.bodies) == 17
    assert val["parse_failures"] == 0 and val["request_failures"] == 0
    assert val["prompt_tokens"] == 100 * 17 and res.extra["model"] == "oracle-bot"
    assert server.max_in_flight > 1  # the envs of one step were asked concurrently
    body = server.bodies[0]
    assert body["model"] == "oracle-bot"
    assert body["response_format"]["json_schema"]["schema"]["properties"]["action"]["enum"] \
        == CARDINAL
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    assert "Empty-6x6" in system and "reach_goal" in system and "north" in system
    assert "Step 1 of 60" in user and "<observation>" in user
    assert "You face" not in user  # a full grid draws the agent's arrow: no facing line
    later = [b["messages"][1]["content"] for b in server.bodies if "Step 2 " in
             b["messages"][1]["content"]]
    assert later and all("Recent steps: step 1:" in u for u in later)  # history is shown


def test_garbage_replies_fall_back_and_are_counted():
    spec = load_world("Empty-6x6")
    with ScriptedChatServer(lambda body: "\u2603 I refuse ]]") as server:
        cfg = method_config("llm:garbage", base_url=server.url, api_key="k", fallback="noop")
        with LLMAgent(spec, cfg, seed=0) as agent:
            res, stats = evaluate_agent(agent, spec, "validation", 1)
    # noop (toggle in front of nothing) never moves: no reward, every env runs to max_steps
    assert res.normalized == 0.0 and res.success == 0.0
    assert stats.requests == stats.parse_failures == 5 * spec.max_steps
    assert stats.request_failures == 0


def test_random_fallback_scores_like_the_random_policy():
    spec = load_world("Empty-6x6")
    with ScriptedChatServer(lambda body: "no idea") as server:
        cfg = method_config("llm:garbage", base_url=server.url, api_key="k")
        with LLMAgent(spec, cfg, seed=3) as agent:
            res, stats = evaluate_agent(agent, spec, "validation", 1)
    assert stats.parse_failures == stats.requests > 0
    assert res.normalized > 0.0  # random moves reach the goal sometimes


def test_endpoint_down_is_a_clear_error():
    spec = load_world("Empty-6x6")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    cfg = method_config("llm:m", base_url=f"http://127.0.0.1:{port}/v1", api_key="k",
                        max_retries=0, timeout=2.0)
    with LLMAgent(spec, cfg) as agent, pytest.raises(LLMAgentError, match="every request"):
        evaluate_agent(agent, spec, "validation", 1)


# ------------------------------------------------------------------ a tiny local model
@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    from tests.generator.test_transformers_backend import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-lm"))


def short_world(name: str = "Empty-6x6", max_steps: int = 6):
    """A catalogue world with a short horizon (a random tiny LM never finishes early)."""
    data = load_world(name).model_dump(mode="json", exclude_none=True)
    data.update(max_steps=max_steps, name=f"Short{name.split('-')[0]}")
    return parse_spec(data)


@pytest.mark.slow  # builds a tokenizer and a model (~10 s)
def test_tiny_local_model_runs_end_to_end(tiny_model_dir, tmp_path):
    spec = short_world()
    cfg = method_config(f"llm-hf:{tiny_model_dir}")
    with LLMAgent(spec, cfg, seed=0) as agent:
        calls = []
        forward = agent.chooser.model.forward

        @functools.wraps(forward)  # keeps the signature the cache keyword is read from
        def counting(*args, **kw):
            calls.append(tuple(kw["input_ids"].shape))
            return forward(*args, **kw)

        agent.chooser.model.forward = counting
        res, stats = evaluate_agent(agent, spec, "validation", 2)
    assert stats.parse_failures == 0 and stats.request_failures == 0  # constrained choice
    prefix = [c for c in calls if c[1] > 200]
    steps = [c for c in calls if c[1] <= 200]
    assert len(prefix) == 1 and prefix[0][0] == 1  # the system message: computed once
    assert stats.requests == stats.decisions == sum(b for b, _ in steps) > 0
    assert steps[0][0] == 10  # all 5 levels x 2 episodes in one forward pass
    assert len(steps) <= spec.max_steps
    assert 0.0 <= res.normalized <= 1.0 and res.episodes == 10
    # the registered method writes its result
    out = get_method(f"llm-hf:{tiny_model_dir}").run(spec, seed=1, run_dir=tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["score"] == out.score and saved["extra"]["backend"] == "transformers"
    assert "api_key" not in json.dumps(saved)


@pytest.mark.slow  # shares the tiny model of the test above
def test_prefix_cache_gives_the_same_choice_scores(tiny_model_dir):
    spec = load_world("Empty-6x6")
    eng = GridEngine(spec, num_envs=5, split="validation", final_obs=False)
    texts = observation_texts(eng.reset(level_ids=torch.arange(5)))
    cached = LLMAgent(spec, method_config(f"llm-hf:{tiny_model_dir}"))
    full = LLMAgent(spec, method_config(f"llm-hf:{tiny_model_dir}", prefix_cache=False))
    # prompts of different lengths (histories), sharing the system message
    chunk = [cached.chooser._ids(cached.messages(i, t, [(0, "east", 0.0)] * i, 0.0))
             for i, t in enumerate(texts)]
    with torch.no_grad():
        want = full.chooser._last_logits(chunk)
        for _ in range(2):  # the prefix is computed once, then reused
            got = cached.chooser._last_logits(chunk)
            assert torch.allclose(got, want, atol=1e-4)
    assert cached.chooser._prefix_ids is not None and full.chooser._prefix_ids is None
    assert len(cached.chooser._prefix_ids) > len(chunk[0]) // 2  # the system message


def test_missing_local_model_is_a_clear_error(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(LLMAgentError, match="no model folder"):
        LLMAgent(load_world("Empty-6x6"), method_config(f"llm-hf:{tmp_path / 'nope'}"))


def test_a_folder_without_a_model_names_the_fix_in_both_backends(tmp_path):
    pytest.importorskip("transformers")
    from autoworld.errors import GenerationError
    from autoworld.generator.transformers_backend import load_causal_lm
    from autoworld.learners.llm_backends import _TransformersChooser

    empty = tmp_path / "not-a-model"
    empty.mkdir()
    cfg = method_config(f"llm-hf:{empty}")
    with pytest.raises(LLMAgentError, match=r"^model: cannot load a causal LM from .*not-a-model"):
        _TransformersChooser(cfg, ["left", "right"])
    import transformers

    with pytest.raises(GenerationError, match=r"^cannot load a causal LM from .*not-a-model"):
        load_causal_lm(transformers, str(empty), "cpu", GenerationError)


def test_an_egocentric_world_tells_the_agent_which_way_it_faces():
    # WindyCoins-9x9: cardinal actions, a view that turns with the agent; the prompt used to
    # say only that the top of the view is ahead, never which compass direction that is
    spec = load_world("WindyCoins-9x9")
    with ScriptedChatServer(lambda body: '{"action": "north"}') as server:
        cfg = method_config("llm:compass", base_url=server.url, api_key="k")
        with LLMAgent(spec, cfg, seed=0) as agent:
            evaluate_agent(agent, spec, "validation", 1)
    eng = GridEngine(spec, num_envs=5, split="validation", final_obs=False)
    eng.reset(level_ids=torch.arange(5))
    want = [f"You face {('east', 'south', 'west', 'north')[int(d)]}" for d in eng.state.dir]
    firsts = [b["messages"][1]["content"] for b in server.bodies if "Step 1 " in
              b["messages"][1]["content"]]
    assert sorted(next(ln for ln in u.splitlines() if ln.startswith("You face")).split(" (")[0]
                  for u in firsts) == sorted(want)
