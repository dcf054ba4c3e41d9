"""The health check each container carries after start (Podman's --health-cmd and friends), from
its kind. Pure: a shell script for the image's own tools (the upstream images' curl, wget or
python3), run inside the container, that says why on failure.

llama.cpp: /health must answer 200 (the model is loaded) and a one-token completion must answer
within the probe timeout; a completion that waits because every slot is busy serving people is
not a failure. With an API key the probe sends a key of its own, read from a file mounted into
the container (`KEY_PATH`), so that no key is in the check's text, `podman inspect` or a log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airpods.plan.spec import HEALTH_KEY_PATH, HealthSpec

KEY_PATH = HEALTH_KEY_PATH  # the probe's key in a llama.cpp container (also in --api-key-file)
GATEWAY_METRICS_PORT = 9180  # plan/gateway.METRICS_PORT: Caddy's internal listener, plain HTTP
PROMETHEUS_PORT = 9090


@dataclass(frozen=True)
class CheckFacts:
    """What a service's check is made from."""

    kind: str
    port: int | None  # the container port its server listens on
    router: bool = False
    keyed: bool = False  # llama.cpp with an API key: the probe reads KEY_PATH
    timeout: float = 10.0  # seconds one probe request may take


def _secs(value: float) -> str:
    return f"{value:g}"


def _llamacpp(f: CheckFacts) -> str:
    base = f"http://127.0.0.1:{f.port}"
    t = _secs(f.timeout)
    # The key never reaches an argv (every local user can read /proc/PID/cmdline): `read` and
    # `printf` are builtins of the shell, and curl reads its header from its config on stdin.
    key = (f'{{ read -r k || [ -n "$k" ]; }} < {KEY_PATH} || {{ echo "cannot read the probe key {KEY_PATH}"; '
           'exit 1; }; a() { printf \'header = "Authorization: Bearer %s"\\n\' "$k"; }; '
           if f.keyed else "a() { :; }; ")
    auth = "-K -"
    head = (f"{key}curl -fsS -m {t} -o /dev/null {base}/health "
            f'|| {{ echo "llama-server /health did not answer 200 within {t} s (model not loaded, or the '
            f'server is stuck)"; exit 1; }}; ')
    if f.router:
        return head + (f"a | curl -fsS -m {t} -o /dev/null {auth} {base}/v1/models "
                       f'|| {{ echo "the router did not list its models within {t} s"; exit 1; }}')
    body = '{"prompt":"Hi","n_predict":1,"cache_prompt":false}'
    return head + (
        f"a | curl -fsS -m {t} -o /dev/null {auth} -H 'Content-Type: application/json' -d '{body}' "
        f"{base}/completion && exit 0; "
        # every slot busy serving people: the probe's request waited its turn, which is not a failure
        f"a | curl -fsS -m {t} {auth} {base}/slots 2>/dev/null | grep -q '\"is_processing\":true' "
        f'&& {{ echo "busy: the probe waited for a slot"; exit 0; }}; '
        f'echo "a one-token completion did not answer within {t} s"; exit 1')


def script(f: CheckFacts) -> str | None:
    """The check's shell text, or None where the kind has no check of its own (generic)."""
    t = _secs(f.timeout)
    if f.kind == "llamacpp" and f.port:
        return _llamacpp(f)
    if f.kind == "open-webui" and f.port:
        return (f"python3 -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:{f.port}/health', "
                f"timeout={t})\" >/dev/null 2>&1 || {{ echo \"Open WebUI /health did not answer within {t} s\"; "
                "exit 1; }")
    if f.kind == "ollama":
        return (f"timeout {t} ollama ps >/dev/null "
                f'|| {{ echo "ollama did not answer ollama ps within {t} s"; exit 1; }}')
    if f.kind == "gateway":
        return (f"wget -q -T {t} -O /dev/null http://127.0.0.1:{GATEWAY_METRICS_PORT}/metrics "
                f'|| {{ echo "Caddy did not answer on its internal listener within {t} s"; exit 1; }}')
    if f.kind == "prometheus":
        # Its port asks for a password: an answer asking for it is an answer (/-/healthy does nothing
        # more than answer), so the check needs no password on its command line. busybox says 401,
        # GNU wget exits 6. No -T: Debian's busybox has none (and crashes on it); Podman's own
        # timeout for the check bounds it.
        return (f"out=$(wget -q -O /dev/null http://127.0.0.1:{PROMETHEUS_PORT}/-/healthy 2>&1); rc=$?; "
                f'[ $rc -eq 0 ] || [ $rc -eq 6 ] || case "$out" in *401*) ;; *) echo "Prometheus /-/healthy did '
                f'not answer within {t} s ($out)"; exit 1;; esac')
    return None


def health_spec(h: Any, kind: str, published: int | None, argv_port: Any, *, router: bool, keyed: bool,
                start_wait: float) -> HealthSpec:
    """A service's HealthSpec from its `health` table: the start wait's URLs (`start_wait`
    seconds) and the check Podman runs after it. A llama.cpp server listens on its argv's port
    (llama-server's own default 8080)."""
    port = int(argv_port or published or 8080) if kind == "llamacpp" else published
    check = script(CheckFacts(kind, port, router=router, keyed=keyed, timeout=h.probe_timeout)) if h.interval else None
    return HealthSpec(h.path, tuple(h.expected_status), start_wait, ("/health",) if kind == "llamacpp" else (),
                      check=check or "", interval=h.interval if check else 0.0, retries=h.retries,
                      start_period=start_wait if h.start_period is None else h.start_period,
                      probe_timeout=h.probe_timeout, max_restarts=h.max_restarts)
