"""OpenAIBackend against a fake OpenAI-compatible server on 127.0.0.1 that records what it
receives and fails on cue: retries, back-off, giving up, and the API key never leaking."""

from __future__ import annotations

import socket
from typing import List

import pytest
from fake_openai import TIMEOUT_S, FakeOpenAI, make_backend

from sso_exp.evaluation.judges import JudgeError, openai

KEY = "sk-test-Zq8wXv3-do-not-leak"
CONV = [{"role": "user", "content": "Say hi."}]


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def test_sends_chat_completions_request_and_reads_reply(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.reply = lambda messages: f"echo: {messages[-1]['content']}"
    convs = [
        CONV,
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Second?"}],
    ]
    assert server.backend(temperature=0.0, max_tokens=7).complete(convs) == [
        "echo: Say hi.",
        "echo: Second?",
    ]
    assert [r["path"] for r in server.requests] == ["/v1/chat/completions"] * 2
    assert [r["body"] for r in server.requests] == [
        {"model": "judge-model", "messages": c, "temperature": 0.0, "max_tokens": 7} for c in convs
    ]
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    server.backend(max_tokens=7).complete([CONV], max_new_tokens=2048)  # a task's own budget
    assert server.requests[-1]["body"]["max_tokens"] == 2048


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
    monkeypatch.setattr(openai, "sleep", delays.append)
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
    backend = make_backend(
        base_url=f"http://127.0.0.1:{port}/v1",
        model="m",
        timeout_s=TIMEOUT_S,
        max_retries=1,
        backoff_s=0.01,
    )
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
        make_backend(base_url="localhost:8000/v1", model="m")


@pytest.mark.parametrize(
    "body",
    [b"not json", b"{}", b'{"choices": []}', b'{"choices": [{"message": {"content": null}}]}'],
)
def test_reply_text_rejects_malformed_bodies(body):
    with pytest.raises(openai.MalformedReply):
        openai.reply_text(body)
