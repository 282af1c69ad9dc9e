"""A `ChatBackend` on any OpenAI-compatible chat-completions server (OpenAI, vLLM,
llama.cpp, ...), standard library only.

Requests go one at a time, so runs are simple to follow and reproducible. Transient
failures (HTTP 429/5xx, connection errors, timeouts, malformed bodies) are retried with
exponential back-off; other HTTP errors fail at once. The API key is read from the
environment per request and never stored, logged or put in an error message."""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import partial
from time import sleep
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from ...distributed import shard_map
from .llm import JudgeError, Message

log = logging.getLogger(__name__)
T = TypeVar("T")


class MalformedReply(ValueError):
    """The body is not a chat-completions response with a text reply."""


def reply_text(body: bytes) -> str:
    """`choices[0].message.content` of a chat-completions response body."""
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, LookupError, TypeError) as err:
        raise MalformedReply(f"malformed response body: {body[:200]!r}") from err
    if not isinstance(content, str):
        raise MalformedReply(f"reply content is not text: {content!r}")
    return content


def token_share(body: bytes, tokens: Tuple[str, str]) -> Optional[float]:
    """P(tokens[0]) / (P(tokens[0]) + P(tokens[1])) from the first reply token's
    `top_logprobs` (a token not among them counts as probability 0; None if neither is)."""
    try:
        top = json.loads(body)["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        found = {t["token"]: float(t["logprob"]) for t in top if t["token"] in tokens}
    except (ValueError, LookupError, TypeError) as err:
        raise MalformedReply(f"no top log-probs in the response body: {body[:200]!r}") from err
    if not found:
        return None
    first, second = (math.exp(found.get(t, -math.inf)) for t in tokens)
    return first / (first + second)


def retryable_status(code: int) -> bool:
    """Rate limits and server errors pass; other client errors will not."""
    return code == 429 or code >= 500


def _redact(text: str, secret: Optional[str]) -> str:
    """`text` without `secret`, in case a server echoes the request headers."""
    return text.replace(secret, "***") if secret else text


def _headers(key: Optional[str]) -> Dict[str, str]:
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    return {"Content-Type": "application/json", "Accept": "application/json", **auth}


def _http_error_detail(err: urllib.error.HTTPError) -> str:
    try:
        body = err.read(300).decode("utf-8", "replace")
    except OSError:
        body = ""
    finally:
        err.close()
    return f"HTTP {err.code} {err.reason}: {body}".strip()


@dataclass(frozen=True)
class OpenAIBackend:
    """Chat completions from `{base_url}/chat/completions`; the key, if any, comes from
    the environment variable named `api_key_env` (None: never send one). A transient
    failure is retried up to `max_retries` times, waiting `backoff_s * 2**k` after the
    k-th failed attempt (k from 0). The settings' defaults are the config's
    (`OpenAIJudgeConfig`); replies are greedy."""

    base_url: str
    model: str
    api_key_env: Optional[str]
    timeout_s: float
    max_retries: int
    backoff_s: float
    max_tokens: int
    temperature: float = 0.0

    def __post_init__(self) -> None:
        # urllib would report a bad scheme as a ValueError on every retry.
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://: {self.base_url!r}")

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def complete(
        self, conversations: Sequence[List[Message]], max_new_tokens: Optional[int] = None
    ) -> List[str]:
        """Each rank asks for its share of the conversations."""
        ask = {"max_tokens": max_new_tokens or self.max_tokens}
        return shard_map(
            lambda share: [self._post(m, ask, reply_text) for m in share], conversations
        )

    def first_token_share(
        self, conversations: Sequence[List[Message]], tokens: Tuple[str, str]
    ) -> List[Optional[float]]:
        """One-token replies with their top log-probabilities (AlpacaEval's weighted
        annotator asks for 5), the two tokens' share read from them."""
        ask = {"max_tokens": 1, "logprobs": True, "top_logprobs": 5}
        parse = partial(token_share, tokens=tokens)
        return shard_map(lambda share: [self._post(m, ask, parse) for m in share], conversations)

    def _post(self, messages: List[Message], ask: Dict[str, Any], parse: Callable[[bytes], T]) -> T:
        """One chat-completions request (`ask`: what this call adds), retried as the class
        says, its body read by `parse`."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        body = json.dumps(
            {"model": self.model, "messages": messages, "temperature": self.temperature, **ask}
        ).encode()
        request = urllib.request.Request(self.url, data=body, headers=_headers(key), method="POST")
        last_error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = self.backoff_s * 2 ** (attempt - 1)
                log.warning(
                    "judge request to %s failed (%s); retry %d/%d in %.2g s",
                    self.url,
                    last_error,
                    attempt,
                    self.max_retries,
                    delay,
                )
                sleep(delay)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return parse(response.read())
            except urllib.error.HTTPError as err:
                last_error = _redact(_http_error_detail(err), key)
                if not retryable_status(err.code):
                    raise JudgeError(f"POST {self.url} failed: {last_error}") from None
            except (OSError, http.client.HTTPException, MalformedReply) as err:
                last_error = _redact(f"{type(err).__name__}: {err}", key)
        raise JudgeError(
            f"POST {self.url} failed after {self.max_retries + 1} attempts; "
            f"last error: {last_error}"
        )
