"""kind = "prometheus": Prometheus, scraping the stack's llama.cpp services and the gateway."""

from __future__ import annotations

from airpods.kinds.base import Check, Confine, ServiceKind, secs

PORT = 9090


def check(f: Check) -> str | None:
    t = secs(f.timeout)
    # Its port asks for a password: an answer asking for it is an answer (/-/healthy does nothing
    # more than answer), so the check needs no password on its command line. busybox says 401,
    # GNU wget exits 6. No -T: Debian's busybox has none (and crashes on it); Podman's own
    # timeout for the check bounds it.
    return (f"out=$(wget -q -O /dev/null http://127.0.0.1:{PORT}/-/healthy 2>&1); rc=$?; "
            f'[ $rc -eq 0 ] || [ $rc -eq 6 ] || case "$out" in *401*) ;; *) echo "Prometheus /-/healthy did '
            f'not answer within {t} s ($out)"; exit 1;; esac')


# Its image runs as nobody, which cannot start Podman's init in rootless Podman ("stat
# /run/podman-init: permission denied"); one process that handles its own signals needs none.
KIND = ServiceKind("prometheus", "Prometheus", scraper=True, check=check, check_in_config_hash=True,
                   confine=Confine(True, ("/tmp",), False), run_as=65534, own_keys=("scrape_interval",))
