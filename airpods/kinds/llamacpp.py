"""kind = "llamacpp": llama.cpp's llama-server, one model or a router of many.

Its check: /health must answer 200 (the model is loaded) and a one-token completion must answer
within the probe timeout; a completion that waits because every slot is busy serving people is not
a failure. With an API key the probe sends a key of its own, read from a file mounted into the
container, so that no key is in the check's text, `podman inspect` or a log."""

from __future__ import annotations

from airpods.kinds.base import Check, Confine, ServiceKind, secs
from airpods.labels import HEALTH_KEY_PATH


def check(f: Check) -> str | None:
    if not f.port:
        return None
    base = f"http://127.0.0.1:{f.port}"
    t = secs(f.timeout)
    # The key never reaches an argv (every local user can read /proc/PID/cmdline): `read` and
    # `printf` are builtins of the shell, and curl reads its header from its config on stdin.
    key = (f'{{ read -r k || [ -n "$k" ]; }} < {HEALTH_KEY_PATH} || {{ echo "cannot read the probe key '
           f'{HEALTH_KEY_PATH}"; exit 1; }}; a() {{ printf \'header = "Authorization: Bearer %s"\\n\' "$k"; }}; '
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


KIND = ServiceKind("llamacpp", "llama.cpp", llama_server=True, check=check, check_in_config_hash=True,
                   gates=("/health",), listen_default=8080, url_path="/v1",
                   confine=Confine(True, ("/tmp",), True),  # a router's children are reaped
                   own_keys=("metrics",), top=True)
