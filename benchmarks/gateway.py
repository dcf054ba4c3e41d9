"""The HTTPS gateway's cost: a short chat's latency and a streamed chat's first token through the
gateway (Caddy, TLS verified against its CA, a person key) against the same llama-server reached
directly on its published port, requests interleaved on one kept-alive connection each, as the
openai client keeps one; then 32 streamed chats at once through the gateway, none may be lost."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.common import Env, Series, free_port

CADDY_IMAGE = "localhost/airpods-test/caddy:2"
BODY = {"model": "m", "max_tokens": 8, "temperature": 0, "messages": [{"role": "user", "content": "Say hi."}]}


def _config(env: Env, port: int) -> str:
    return env.render_config(enabled=1) + f"""
[services.gateway]
enabled = true
image = "{CADDY_IMAGE}"
pod = "bench-gateway"
container = "bench-gateway-0"
default = "bench1"
ports = [{{ host = {port}, container = 8443 }}]
volumes = [{{ source = "airpods_bench_gateway", target = "/data" }}]
"""


class Client:
    """One kept-alive connection: plain HTTP to llama-server, or HTTPS to the gateway."""

    def __init__(self, port: int, key: str, context: ssl.SSLContext | None):
        self.port, self.key, self.context = port, key, context
        self.reconnects = 0
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        if self.context is None:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=120, context=self.context)

    def chat(self, stream: bool) -> tuple[float, bool]:
        """(seconds to the whole answer, or to the first streamed token; whether it ended well)."""
        body = json.dumps({**BODY, "stream": stream})
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"}
        began = time.perf_counter()
        try:
            self.conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
            resp = self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # The server closed the kept-alive connection (llama-server does after a stream): a new one,
            # as a client library would open; counted, and the request timed from the new start.
            self.reconnects += 1
            self.conn.close()
            self.conn = self._connect()
            began = time.perf_counter()
            self.conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
            resp = self.conn.getresponse()
        if not stream:
            data = resp.read()
            return time.perf_counter() - began, resp.status == 200 and b'"choices"' in data
        first, done = None, False
        for line in resp:
            if first is None and line.startswith(b"data: ") and b'"content"' in line:
                first = time.perf_counter() - began
            done = done or line.strip() == b"data: [DONE]"
        resp.read()
        return (first if first is not None else float("nan")), resp.status == 200 and done

    def close(self) -> None:
        self.conn.close()


def gateway_overhead(env: Env, runs: int, concurrent: int = 32) -> dict[str, Series]:
    port = free_port()
    env.config.write_text(_config(env, port))
    try:
        env.run("start", "gateway")
        key = env.run("keys", "add", "bench").stdout.strip()
        ca = env.tmp / "gateway-ca.pem"
        env.run("keys", "ca", "-o", str(ca))
        context = ssl.create_default_context(cafile=str(ca))
        direct_port = env.render("bench1")["ports"][0]["host"]
        backend = env.render("bench1")["env"]["LLAMA_API_KEY"]
        deadline = time.monotonic() + 15  # the new key is live once Caddy reloaded its key file
        while time.monotonic() < deadline:
            probe = Client(port, key, context)
            try:
                if probe.chat(False)[1]:
                    break
            except (OSError, http.client.HTTPException) as exc:
                print(f"gateway not answering yet: {type(exc).__name__}")
            finally:
                probe.close()
            time.sleep(0.2)
        clients = {"direct": Client(direct_port, backend, None), "gateway": Client(port, key, context)}
        out = {f"{what} {where}": Series(f"{what}, {where}") for what in ("chat", "first token")
               for where in clients}
        for c in clients.values():  # warm-up: connections, TLS session, prompt cache
            for stream in (False, True, False, True):
                c.chat(stream)
        for _ in range(runs):
            for where, c in clients.items():
                out[f"chat {where}"].samples.append(c.chat(False)[0])
                out[f"first token {where}"].samples.append(c.chat(True)[0])
        for where, c in clients.items():
            print(f"gateway benchmark: {where} client reopened its connection {c.reconnects} times")
            c.close()
        out["streams"] = Series(f"{concurrent} concurrent streams through the gateway: completed")
        out["streams"].samples.append(float(_concurrent(port, key, context, concurrent)))
        return out
    finally:
        env.run("stop", "--remove", "--timeout", "2", check=False)
        env.run("clean", "gateway", "--volumes", "--yes", check=False)  # its CA volume (the models are kept)
        env.config.write_text(env.render_config())


def _concurrent(port: int, key: str, context: ssl.SSLContext, n: int) -> int:
    """How many of n streamed chats, all sent at once on connections of their own, ended with [DONE]."""
    def one(_: int) -> bool:
        c = Client(port, key, context)
        try:
            return c.chat(True)[1]
        except OSError:
            return False
        finally:
            c.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return sum(pool.map(one, range(n)))

