"""A fake OpenAI-compatible chat-completions server on 127.0.0.1, for judge tests."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List

from omegaconf import MISSING

from sso_exp.config.evaluation import OpenAIJudgeConfig
from sso_exp.evaluation.judges import OpenAIBackend

TIMEOUT_S = 0.2  # the client's
SLOW_S = 0.6  # a "slow" reply comes after this long


class FakeOpenAI:
    """A chat-completions server speaking the real response JSON. `failures` holds one
    mode per coming request ("500", "429", "400", "malformed", "slow"), then it answers
    `reply(messages)`. Error bodies echo the Authorization header, as a careless proxy
    might, so tests can check the key is redacted."""

    def __init__(
        self,
        reply: Callable[[List[Dict[str, str]]], str] = lambda m: "Hello!",
        top_logprobs: Callable[[List[Dict[str, str]]], Dict[str, float]] = lambda m: {},
    ):
        self.reply, self.top_logprobs = reply, top_logprobs
        self.failures: List[str] = []
        self.requests: List[Dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                mode = fake.failures.pop(0) if fake.failures else "ok"
                if mode.isdigit():
                    echo = {
                        "error": {
                            "message": "failed on cue",
                            "auth": self.headers.get("Authorization"),
                        }
                    }
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
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def completion(self, request: Dict) -> Dict:
        content = self.reply(request["messages"])
        top = [
            {"token": t, "logprob": lp} for t, lp in self.top_logprobs(request["messages"]).items()
        ]
        extra = {"logprobs": {"content": [{"token": content, "top_logprobs": top}]}}
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    **(extra if request.get("logprobs") else {}),
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def backend(self, **kwargs) -> OpenAIBackend:
        """A client for this server with test-sized timeout and back-off."""
        return make_backend(
            **{
                "base_url": self.base_url,
                "model": "judge-model",
                "timeout_s": TIMEOUT_S,
                "backoff_s": 0.01,
                **kwargs,
            }
        )

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def make_backend(**kwargs) -> OpenAIBackend:
    """An OpenAIBackend with the config's defaults for what `kwargs` leaves out."""
    defaults = {
        f.name: f.default
        for f in fields(OpenAIJudgeConfig)
        if not f.name.startswith("_") and f.default is not MISSING
    }
    return OpenAIBackend(**{**defaults, **kwargs})
