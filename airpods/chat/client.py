"""A streaming OpenAI-style chat client for llama-server (and the gateway in front of it), on the
standard library alone: `POST /v1/chat/completions` with `"stream": true`, read as server-sent
events. Closing the connection is how an answer is stopped: llama-server notices the closed socket
and frees the slot, so a Ctrl-C never leaves a generation running on the server."""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airpods.errors import RuntimeFailure, UsageError


class StopAnswer(Exception):
    """Raised by an on_text callback to stop the answer (nobody reads it any more): like a Ctrl-C,
    the connection is closed so the server stops generating."""


@dataclass
class Reply:
    text: str = ""
    reasoning: str = ""  # a reasoning model's `reasoning_content` (not part of the answer)
    timings: dict[str, Any] = field(default_factory=dict)  # llama-server's own: prompt_per_second, ...
    model: str | None = None
    finish_reason: str | None = None
    stopped: bool = False  # cut short by the user (Ctrl-C): the connection was closed

    def stats(self) -> str:
        """Prompt and generation speed as llama-server measured them."""
        t = self.timings
        if not t:
            return "no timings from the server"
        return (f"prompt: {t.get('prompt_n', '?')} tokens, {float(t.get('prompt_per_second') or 0):.1f} tokens/s; "
                f"generation: {t.get('predicted_n', '?')} tokens, {float(t.get('predicted_per_second') or 0):.1f} "
                "tokens/s")


@dataclass(frozen=True)
class Endpoint:
    """Where to send chats: a `/v1` base URL, the key (never printed), and for HTTPS the CA to trust."""

    base: str  # e.g. http://127.0.0.1:8080/v1
    key: str | None = None
    ca_pem: str | None = None  # the gateway's CA; None: the system's trust store
    timeout: float = 600.0

    def describe(self) -> str:
        return self.base  # the key stays out of every message


class ChatClient:
    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(self.endpoint.base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"not an http(s) URL: {self.endpoint.base}")
        if parts.scheme == "https":
            context = ssl.create_default_context(cadata=self.endpoint.ca_pem) if self.endpoint.ca_pem \
                else ssl.create_default_context()
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port or 443, timeout=self.endpoint.timeout, context=context)
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=self.endpoint.timeout)
        return conn, parts.path.rstrip("/")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.endpoint.key:
            headers["Authorization"] = f"Bearer {self.endpoint.key}"
        return headers

    def stream(self, messages: list[dict[str, str]], *, model: str | None = None,
               on_text: Callable[[str], None] | None = None, options: dict[str, Any] | None = None) -> Reply:
        """Send the conversation; call on_text with each piece of the answer as it comes. A
        KeyboardInterrupt while it streams closes the connection (the server stops generating) and
        returns what came so far with `stopped` set."""
        body = {"messages": messages, "stream": True, **({"model": model} if model else {}), **(options or {})}
        conn, path = self._connect()
        self._conn = conn
        reply = Reply()
        try:
            try:
                conn.request("POST", f"{path}/chat/completions", body=json.dumps(body), headers=self._headers())
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise RuntimeFailure(f"{self.endpoint.describe()} did not answer: {exc}",
                                     hint="is the service running? airpods status") from exc
            if resp.status != 200:
                raise _http_error(self.endpoint.describe(), resp.status, resp.read())
            for event in _events(resp):
                _take(reply, event, on_text)
        except (KeyboardInterrupt, StopAnswer):
            reply.stopped = True
            _reset(conn)
        except (OSError, http.client.HTTPException) as exc:
            raise RuntimeFailure(f"the answer from {self.endpoint.describe()} broke off: {exc}") from exc
        finally:
            conn.close()  # on a Ctrl-C this is what tells the server to stop
            self._conn = None
        return reply

    def models(self) -> list[str]:
        """The model ids the endpoint lists (GET /v1/models)."""
        conn, path = self._connect()
        try:
            conn.request("GET", f"{path}/models", headers=self._headers())
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise RuntimeFailure(f"{self.endpoint.describe()} did not answer: {exc}",
                                 hint="is the service running? airpods status") from exc
        finally:
            conn.close()
        if resp.status != 200:
            raise _http_error(self.endpoint.describe(), resp.status, raw)
        try:
            return [str(m.get("id")) for m in json.loads(raw).get("data") or [] if isinstance(m, dict)]
        except (ValueError, AttributeError):
            return []


def _reset(conn: http.client.HTTPConnection) -> None:
    """Close with a reset rather than a FIN, so the server's very next write fails and it stops
    generating at once (after a FIN the first write still succeeds)."""
    import socket
    import struct

    if conn.sock is not None:
        with contextlib.suppress(OSError):
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _events(resp: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """The JSON payloads of `data:` lines, until `[DONE]` or the end of the stream."""
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            continue
        if isinstance(event, dict):
            if "error" in event:
                err = event["error"]
                message = err.get("message") if isinstance(err, dict) else err
                raise RuntimeFailure(f"the server stopped the answer: {message}")
            yield event


def _take(reply: Reply, event: dict[str, Any], on_text: Callable[[str], None] | None) -> None:
    """One streamed event into the reply; what is not of the shape an OpenAI stream has (choices
    that are not a list, a delta that is not an object, text that is not a string) is skipped."""
    if isinstance(event.get("model"), str):
        reply.model = event["model"]
    if isinstance(event.get("timings"), dict):
        reply.timings = event["timings"]
    choices = event.get("choices")
    for choice in choices if isinstance(choices, list) else []:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        reasoning = delta.get("reasoning_content")
        reply.reasoning += reasoning if isinstance(reasoning, str) else ""
        piece = delta.get("content")
        if isinstance(piece, str) and piece:
            reply.text += piece
            if on_text:
                on_text(piece)
        if isinstance(choice.get("finish_reason"), str):
            reply.finish_reason = choice["finish_reason"]


def _http_error(where: str, status: int, raw: bytes) -> RuntimeFailure:
    try:
        err = json.loads(raw).get("error")
        message = err.get("message") if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError):
        message = raw.decode("utf-8", "replace")[:200]
    if status == 401:
        return RuntimeFailure(f"{where} refused the key (HTTP 401): {message}",
                              hint="through the gateway, export AIRPODS_KEY=<your key> (airpods keys add NAME)")
    if status == 404:
        return RuntimeFailure(f"{where}: HTTP 404: {message}", hint="check the model name: airpods models ps")
    return RuntimeFailure(f"{where}: HTTP {status}: {message}")
