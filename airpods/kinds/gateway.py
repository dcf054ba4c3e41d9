"""kind = "gateway": Caddy as one HTTPS door in front of the model servers and Open WebUI."""

from __future__ import annotations

from airpods.kinds.base import Check, Confine, ServiceKind, secs

METRICS_PORT = 9180  # Caddy's internal listener (plan/gateway.py), plain HTTP


def check(f: Check) -> str | None:
    t = secs(f.timeout)
    return (f"wget -q -T {t} -O /dev/null http://127.0.0.1:{METRICS_PORT}/metrics "
            f'|| {{ echo "Caddy did not answer on its internal listener within {t} s"; exit 1; }}')


KIND = ServiceKind("gateway", "the gateway", door=True, wired=True, check=check,
                   confine=Confine(True, ("/tmp", "/config"), True), top=True)
