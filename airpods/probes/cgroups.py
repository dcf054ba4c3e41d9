"""Which resource limits the container engine can enforce for its user: rootful Podman gets
every cgroup controller; rootless Podman gets only what systemd delegated to the user on
cgroups v2, and nothing on cgroups v1 (Podman drops or refuses cpuset, memory and CPU limits).

A cheap local probe (a stat and a file read), because it runs on `start`'s path; Podman's
`/info` says the same thing but costs ~0.2 s."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LIMITS = ("cpuset", "memory", "cpu")


@dataclass(frozen=True)
class LimitSupport:
    rootless: bool
    cgroup_version: int  # 1 or 2 (0: unknown)
    controllers: frozenset[str]  # of LIMITS, the ones the engine can set for this user

    def enforces(self, limit: str) -> bool:
        return limit in self.controllers

    @property
    def mode(self) -> str:
        return "rootless" if self.rootless else "rootful"

    @property
    def implications(self) -> list[str]:
        """What running this way means for the user, in a line each."""
        if not self.rootless:
            return ["rootful: containers run as root's Podman; files in volumes belong to root"]
        return ["rootless: pods, volumes and images live in your own Podman storage",
                "rootless: host ports below net.ipv4.ip_unprivileged_port_start need that sysctl lowered",
                "rootless: AMD/Vulkan devices get --group-add keep-groups (your video/render groups; needs crun)"]

    def describe(self) -> str:
        version = f"cgroups v{self.cgroup_version}" if self.cgroup_version else "cgroups unknown"
        missing = [c for c in LIMITS if c not in self.controllers]
        if not missing:
            return f"{self.mode}, {version}: cpuset, memory and CPU limits are enforced"
        why = ("rootless Podman on cgroups v1 cannot set cgroup limits" if self.rootless and
               self.cgroup_version == 1 else f"controllers not delegated to this user: {', '.join(missing)}")
        return (f"{self.mode}, {version}: {', '.join(missing)} limits are not enforced ({why}); "
                "llama.cpp thread counts still follow the CPU plan")


ALL = LimitSupport(False, 0, frozenset(LIMITS))


def limit_support(owner_uid: int, cgroup_root: Path = Path("/sys/fs/cgroup")) -> LimitSupport:
    """What the engine run by `owner_uid` (0 = rootful) can enforce on this machine."""
    v2 = (cgroup_root / "cgroup.controllers").is_file()
    version = 2 if v2 else (1 if (cgroup_root / "cpu").exists() or (cgroup_root / "cpuset").exists() else 0)
    if owner_uid == 0:
        return LimitSupport(False, version, frozenset(LIMITS))
    if not v2:
        return LimitSupport(True, version, frozenset())
    delegated = cgroup_root / "user.slice" / f"user-{owner_uid}.slice" / f"user@{owner_uid}.service"
    try:
        names = set((delegated / "cgroup.controllers").read_text(encoding="ascii").split())
    except OSError:
        names = set()
    return LimitSupport(True, 2, frozenset(c for c in LIMITS if c in names))
