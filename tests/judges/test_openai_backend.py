"""OpenAIBackend against a fake OpenAI-compatible server on 127.0.0.1 that records what it
receives and fails on cue: retries, back-off, giving up, and the API key never leaking."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List

import pytest

from sso_exp.judges import JudgeError, OpenAIBackend
from sso_exp.judges import openai_backend

KEY = "sk-test-Zq8wXv3-do-not-leak"
CONV = [{"role": "user", "content": "Say hi."}]
TIMEOUT_S = 0.2  # the client's; a "slow" reply comes after SLOW_S
SLOW_S = 0.6


class FakeOpenAI:
    """A chat-completions server speaking the real response JSON. `failures` holds one
    mode per coming request ("500", "429", "400", "malformed", "slow"), then it answers
    `reply(messages)`. Error bodies echo the Authorization header, as a careless proxy
    might, so tests can check the key is redacted."""

    def __init__(self, reply: Callable[[List[Dict[str, str]]], str] = lambda m: "Hello!"):
        self.reply = reply
        self.failures: List[str] = []
        self.requests: List[Dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "headers": dict(self.headers),
                                      "body": body})
                mode = fake.failures.pop(0) if fake.failures else "ok"
                if mode.isdigit():
                    echo = {"error": {"message": "failed on cue",
                                      "auth": self.headers.get("Authorization")}}
                    return self._send(int(mode), json.dumps(echo).encode())
                if mode == "malformed":
                    return self._send(200, b'{"choices": [{"message": ')
                if mode == "slow":
                    time.sleep(SLOW_S)
                self._send(200, json.dumps(fake.completion(body)).encode())

            def _send(self, status: int, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    def completion(self, request: Dict) -> Dict:
        content = self.reply(request["messages"])
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": request["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def backend(self, **kwargs) -> OpenAIBackend:
        """A client for this server with test-sized timeout and back-off."""
        return OpenAIBackend(**{"base_url": self.base_url, "model": "judge-model",
                                "timeout_s": TIMEOUT_S, "backoff_s": 0.01, **kwargs})

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def test_sends_chat_completions_request_and_reads_reply(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.reply = lambda messages: f"echo: {messages[-1]['content']}"
    convs = [CONV, [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Second?"}]]
    assert server.backend(temperature=0.0, max_tokens=7).complete(convs) == [
        "echo: Say hi.", "echo: Second?"]
    assert [r["path"] for r in server.requests] == ["/v1/chat/completions"] * 2
    assert [r["body"] for r in server.requests] == [
        {"model": "judge-model", "messages": c, "temperature": 0.0, "max_tokens": 7}
        for c in convs]
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("key_env", ["OPENAI_API_KEY", None])
def test_no_authorization_header_without_a_key(server, monkeypatch, key_env):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert server.backend(api_key_env=key_env).complete([CONV]) == ["Hello!"]
    assert "Authorization" not in server.requests[0]["headers"]


@pytest.mark.parametrize("failure", ["500", "503", "429", "malformed", "slow"])
def test_transient_failures_are_retried(server, failure):
    server.failures = [failure, failure]
    assert server.backend(max_retries=2).complete([CONV]) == ["Hello!"]
    assert len(server.requests) == 3


def test_gives_up_after_max_retries_with_exponential_backoff(server, monkeypatch):
    delays: List[float] = []
    monkeypatch.setattr(openai_backend, "sleep", delays.append)
    server.failures = ["500"] * 10
    with pytest.raises(JudgeError) as info:
        server.backend(max_retries=3, backoff_s=0.5).complete([CONV])
    assert len(server.requests) == 4
    assert delays == [0.5, 1.0, 2.0]
    message = str(info.value)
    assert f"{server.base_url}/chat/completions" in message
    assert "4 attempts" in message and "HTTP 500" in message


def test_unreachable_server_gives_up_naming_the_url():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", timeout_s=TIMEOUT_S,
                            max_retries=1, backoff_s=0.01)
    with pytest.raises(JudgeError, match=f"127.0.0.1:{port}/v1/chat/completions"):
        backend.complete([CONV])


@pytest.mark.parametrize("status", ["400", "401", "404"])
def test_client_errors_fail_at_once(server, status):
    server.failures = [status]
    with pytest.raises(JudgeError, match=f"HTTP {status}") as info:
        server.backend().complete([CONV])
    assert len(server.requests) == 1
    assert f"{server.base_url}/chat/completions" in str(info.value)


def test_api_key_never_leaks(server, monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    backend = server.backend(max_retries=2)
    server.failures = ["500", "500", "500"]
    with caplog.at_level("DEBUG"), pytest.raises(JudgeError) as gave_up:
        backend.complete([CONV])
    server.failures = ["400"]
    with pytest.raises(JudgeError) as refused:
        backend.complete([CONV])
    assert server.requests[-1]["headers"]["Authorization"] == f"Bearer {KEY}"
    for err in (gave_up.value, refused.value):
        assert "***" in str(err)  # the echo reached the message, redacted
        assert KEY not in str(err) and KEY not in repr(err)
    assert caplog.records and KEY not in caplog.text
    assert KEY not in repr(backend) and KEY not in str(vars(backend))


def test_rejects_base_url_without_scheme():
    with pytest.raises(ValueError, match="http"):
        OpenAIBackend("localhost:8000/v1", "m")


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"choices": []}',
                                  b'{"choices": [{"message": {"content": null}}]}'])
def test_reply_text_rejects_malformed_bodies(body):
    with pytest.raises(openai_backend.MalformedReply):
        openai_backend.reply_text(body)
