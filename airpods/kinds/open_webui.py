"""kind = "open-webui": Open WebUI, wired to every model server of the stack (and to the gateway's
login when there is one). Its root stays writable: it writes into its own tree at start."""

from __future__ import annotations

from airpods.kinds.base import Check, Confine, ServiceKind, secs


def check(f: Check) -> str | None:
    if not f.port:
        return None
    t = secs(f.timeout)
    return (f"python3 -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:{f.port}/health', "
            f"timeout={t})\" >/dev/null 2>&1 || {{ echo \"Open WebUI /health did not answer within {t} s\"; "
            "exit 1; }")


KIND = ServiceKind("open-webui", "Open WebUI", chat_ui=True, wired=True, check=check,
                   confine=Confine(False, (), True))
