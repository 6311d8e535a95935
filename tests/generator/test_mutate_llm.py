"""LLM mutation ("a new, harder variant of this world") through the openai backend, offline
against the loopback chat-completions server: the child is validated like any proposal."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("openai")

from autoworld.envs.catalogue import load_world  # noqa: E402
from autoworld.generator.mutate import mutate_llm  # noqa: E402
from autoworld.spec import parse_spec  # noqa: E402
from tests.generator.test_openai_backend import EMPTY_SPEC, ChatServer, backend_for  # noqa: E402


@pytest.fixture
def server():
    with ChatServer() as s:
        yield s


def test_harder_variant_is_validated_and_named_after_its_parent(server):
    parent = load_world("Empty-6x6")
    harder = {**EMPTY_SPEC, "name": "Whatever the model says", "height": 8, "width": 8,
              "max_steps": 60}
    server.content = json.dumps(harder)
    out = mutate_llm(parent, backend_for(server.url), seed=1)
    assert out.accepted and out.rounds == 1 and out.stage is None
    child = parse_spec(out.child)
    assert child.content_hash != parent.content_hash and child.height == 8
    assert child.name.startswith("Empty-6x6-m") and "Empty-6x6" in child.description
    assert (out.prompt_tokens, out.completion_tokens) == (123, 45)
    user = server.requests[0]["body"]["messages"][1]["content"]
    assert "harder variant" in user and '"Empty-6x6"' in user  # the parent is in the prompt


def test_a_copy_of_the_parent_is_rejected_and_repair_feedback_is_sent(server):
    parent = load_world("Empty-6x6")
    server.content = json.dumps(EMPTY_SPEC)  # the parent itself: not a new world
    out = mutate_llm(parent, backend_for(server.url), seed=0, repair_rounds=1)
    assert not out.accepted and out.stage == "novelty" and out.rounds == 2
    assert "duplicate" in out.reason
    second = server.requests[1]["body"]["messages"][1]["content"]
    assert "<feedback>" in second and "duplicate" in second


def test_garbage_and_hostile_replies_fail_cleanly(server):
    parent = load_world("Empty-6x6")
    server.content = "__import__('os').system('echo pwned')"
    out = mutate_llm(parent, backend_for(server.url), seed=0, repair_rounds=0)
    assert not out.accepted and out.stage == "schema" and out.child is None
    server.content = json.dumps({**EMPTY_SPEC, "height": 10**9,
                                 "transition": [{"kind": "exec_python", "code": "1"}]})
    out = mutate_llm(parent, backend_for(server.url), seed=0, repair_rounds=0)
    assert not out.accepted and out.stage == "schema"
