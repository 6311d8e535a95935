"""What the LLM client does with answers that are not chat completions: every failure is a
GenerationError after the retries, never a crash of the caller."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("openai")

from autoworld.errors import GenerationError  # noqa: E402
from autoworld.generator.llm_client import LLMClient  # noqa: E402
from autoworld.learners.llm_prompts import parse_action  # noqa: E402

COMPLETION = json.dumps({
    "id": "c", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "ok"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})


class RawServer:
    """Answers the i-th request with ``answers[i]`` (status, body); the last one repeats."""

    def __init__(self, answers: list[tuple[int, str]]) -> None:
        self.answers, self.count = answers, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                status, body = server.answers[min(server.count, len(server.answers) - 1)]
                server.count += 1
                data = body.encode()
                self.send_response(status)
                for k, v in getattr(server, "headers", {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _chat(answers: list[tuple[int, str]]):
    server = RawServer(answers)
    try:
        client = LLMClient(base_url=server.url, model="m", api_key="k", timeout=5,
                           max_retries=1, backoff=0.01)
        return client.chat([{"role": "user", "content": "hi"}]), server.count
    finally:
        server.close()


@pytest.mark.parametrize("body", [
    "<html><body>Please log in</body></html>",  # a proxy's page
    '{"error": {"message": "quota"}}',  # an error object with status 200
    '{"id": "c", "choices": [{"index": 0, ',  # a body cut short
])
def test_a_200_that_is_not_a_completion_is_retried_then_a_generation_error(body):
    with pytest.raises(GenerationError, match=r"after 2 attempt\(s\)"):
        _chat([(200, body)])


def test_a_server_timeout_is_retried_and_a_missing_model_is_not():
    reply, count = _chat([(408, '{"error": {"message": "timeout"}}'), (200, COMPLETION)])
    assert reply.text == "ok" and count == 2
    with pytest.raises(GenerationError, match="check the model name"):
        _chat([(404, '{"error": {"message": "no such model"}}')])


def test_unicode_digits_name_no_action():
    names = ["left", "right", "forward"]
    assert parse_action("²", names) is None  # isdigit() but not an int(): no crash
    assert parse_action('{"action": "³"}', names) is None
    assert parse_action("2", names) == 2


def test_a_reply_cut_at_the_token_limit_says_so():
    cut = json.loads(COMPLETION)
    cut["choices"][0]["finish_reason"] = "length"
    cut["choices"][0]["message"]["content"] = '{"name": "A", '
    reply, _ = _chat([(200, json.dumps(cut))])
    assert reply.finish_reason == "length" and reply.text == '{"name": "A", '


def test_a_rate_limited_answer_waits_as_long_as_it_asks():
    import time

    server = RawServer([(429, '{"error": {"message": "slow down"}}'), (200, COMPLETION)])
    server.headers = {"Retry-After": "0.6"}
    try:
        client = LLMClient(base_url=server.url, model="m", api_key="k", timeout=5,
                           max_retries=1, backoff=0.01)
        start = time.perf_counter()
        assert client.chat([{"role": "user", "content": "hi"}]).text == "ok"
        assert time.perf_counter() - start >= 0.6  # not the 0.01 s backoff
    finally:
        server.close()
