"""Least privilege, per kind (pure): what each container is given beyond running its program.

Under `runtime.hardening = "strict"` (the default) a kind whose needs are known runs with every
capability dropped, no new privileges, Podman's small init as PID 1, and, where the image writes
nothing outside its volumes but a few known paths, a read-only root with those paths in memory:

| kind | root | written in memory (tmpfs) | why |
|---|---|---|---|
| llamacpp | read-only | /tmp, --slot-save-path when not on a volume | llama-server writes nothing else |
| gateway | read-only | /tmp, /config | Caddy's autosaved config (XDG_CONFIG_HOME); its CA is in /data |
| prometheus | read-only | /tmp | the wrapper's key files; its data is in /prometheus (no init) |
| open-webui | writable | - | it writes into its own install (static files, caches) |
| ollama | writable | - | it writes outside its volume (caches, temporary model parts) |
| generic | Podman's | - | an image airpods knows nothing of: no new privileges only |

None of these programs needs a capability: each listens on a port above 1023 and writes only
what it owns. A container with GPU devices keeps a writable root: the NVIDIA toolkit's CDI hooks
write into it (the loader cache, links) when the container is made. `hardening = "default"` (the
runtime's, or one service's) is Podman's own defaults; `cap_add` and `tmpfs` add to strict."""

from __future__ import annotations

from collections.abc import Iterable

from airpods.kinds import kind_of
from airpods.plan.spec import Confinement

TMPFS_SIZE = "64m"
SLOT_SAVE_SIZE = "1g"
def slot_save_path(argv: Iterable[str]) -> str | None:
    items = list(argv)
    for i, item in enumerate(items):
        if item == "--slot-save-path" and i + 1 < len(items):
            return items[i + 1]
        if item.startswith("--slot-save-path="):
            return item.split("=", 1)[1]
    return None


def confine(kind: str, profile: str, *, cap_add: Iterable[str] = (), tmpfs: dict[str, str] | None = None,
            argv: Iterable[str] = (), volume_targets: Iterable[str] = (), devices: bool = False) -> Confinement:
    """A service's Confinement from its kind and the profile it asks for."""
    if profile != "strict":
        return Confinement()
    k = kind_of(kind)
    if k.confine is None:
        return Confinement("strict", no_new_privileges=True, cap_add=tuple(cap_add))
    read_only, paths, init = k.confine.read_only, k.confine.writes, k.confine.init
    mounts = {p: TMPFS_SIZE for p in paths}
    save = slot_save_path(argv) if k.llama_server else None
    if save and not any(save == t or save.startswith(t.rstrip("/") + "/") for t in volume_targets):
        mounts[save] = SLOT_SAVE_SIZE
    mounts.update(tmpfs or {})
    return Confinement("strict", ("ALL",), tuple(dict.fromkeys(cap_add)), True, read_only and not devices,
                       tuple(sorted(mounts.items())), init)
