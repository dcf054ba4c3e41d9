"""What CPUs this process may use: its affinity, the physical core of each CPU, and the cgroup
CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), the tightest one on the way up to the root.

Reads only the files under the roots it is given (tests point them at a temp tree) and returns
data; it never touches os.environ."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CpuTopology:
    cpus: tuple[int, ...]  # logical CPUs in this process's affinity mask
    cores: tuple[tuple[int, int], ...] = ()  # per CPU: (package, core); empty = each CPU its own core
    quota: float | None = None  # cgroup CPU quota in CPUs; None = no quota
    source: str = ""

    def core_of(self, cpu: int) -> tuple[int, int]:
        if self.cores and len(self.cores) == len(self.cpus):
            return self.cores[self.cpus.index(cpu)]
        return (0, cpu)

    @property
    def ordered(self) -> list[int]:
        """CPUs with hyperthread siblings next to each other, so a contiguous slice takes whole cores."""
        return sorted(self.cpus, key=lambda c: (self.core_of(c), c))

    @property
    def usable(self) -> list[int]:
        """The CPUs a plan may hand out: all of them, or as many whole CPUs as the quota allows
        (at least one: a quota of 1.5 CPUs gives 1, so that spinning threads are not throttled)."""
        pool = self.ordered
        if self.quota is not None:
            pool = pool[:max(1, min(len(pool), int(self.quota)))]
        return pool

    def describe(self) -> str:
        text = f"{len(self.cpus)} CPU{'s' if len(self.cpus) != 1 else ''} ({format_cpuset(self.cpus)})"
        if self.quota is not None:
            text += f", cgroup quota {self.quota:g} CPUs"
        return text


def format_cpuset(cpus: Iterable[int]) -> str:
    """[0, 1, 2, 5, 7, 8] → '0-2,5,7-8' (the cpuset syntax of Podman and the kernel)."""
    out: list[str] = []
    ordered = sorted(set(cpus))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def parse_cpuset(text: str) -> list[int]:
    """'0-2,5' → [0, 1, 2, 5]; raises ValueError on anything else."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        lo, _, hi = part.strip().partition("-")
        start, end = int(lo), int(hi or lo)
        if start < 0 or end < start:
            raise ValueError(f"bad CPU range {part!r}")
        cpus.extend(range(start, end + 1))
    return sorted(set(cpus))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _v2_quota(text: str | None) -> float | None:
    if not text:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max" or not period:
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _v1_quota(directory: Path) -> float | None:
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    try:
        q, p = int(quota or "-1"), int(period or "0")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _walk_up(base: Path, rel: str) -> list[Path]:
    """base/rel, then each parent up to base (the limit that binds may sit on any ancestor)."""
    parts = [p for p in rel.split("/") if p and p != ".."]
    return [base.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def cgroup_quota(proc_cgroup: str | None, cgroup_root: Path) -> float | None:
    """The tightest CPU quota on this process's cgroup path, v2 or v1."""
    if not proc_cgroup:
        return None
    quotas: list[float] = []
    for line in proc_cgroup.splitlines():
        hid, _, rest = line.partition(":")
        controllers, _, rel = rest.partition(":")
        if hid == "0" and controllers == "":  # cgroup v2 (unified)
            quotas += [q for d in _walk_up(cgroup_root, rel) if (q := _v2_quota(_read(d / "cpu.max")))]
        elif "cpu" in controllers.split(","):
            for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                if (cgroup_root / mount).is_dir():
                    quotas += [q for d in _walk_up(cgroup_root / mount, rel) if (q := _v1_quota(d))]
                    break
    return min(quotas) if quotas else None


def _core_ids(cpus: tuple[int, ...], sys_cpu: Path) -> tuple[tuple[int, int], ...]:
    out = []
    for cpu in cpus:
        topo = sys_cpu / f"cpu{cpu}" / "topology"
        package, core = _read(topo / "physical_package_id"), _read(topo / "core_id")
        if package is None or core is None or not package.lstrip("-").isdigit() or not core.isdigit():
            return ()
        out.append((int(package), int(core)))
    return tuple(out)


@dataclass(frozen=True)
class CpuProbeEnv:
    proc_self: Path = Path("/proc/self")
    cgroup_root: Path = Path("/sys/fs/cgroup")
    sys_cpu: Path = Path("/sys/devices/system/cpu")
    affinity: Callable[[], Iterable[int]] | None = None  # default: os.sched_getaffinity(0)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> CpuProbeEnv:
        """AIRPODS_CPU_AFFINITY="0-3" plans as if only those CPUs were usable (tests, and to keep
        CPUs free for other work)."""
        fixed = environ.get("AIRPODS_CPU_AFFINITY", "").strip()
        if not fixed:
            return cls()
        cpus = parse_cpuset(fixed)
        return cls(affinity=lambda: cpus)


def probe_cpu(env: CpuProbeEnv = CpuProbeEnv()) -> CpuTopology:
    getter = env.affinity or (lambda: os.sched_getaffinity(0))
    try:
        cpus = tuple(sorted(getter()))
    except (AttributeError, OSError):  # no sched_getaffinity on this platform
        cpus = tuple(range(os.cpu_count() or 1))
    quota = cgroup_quota(_read(env.proc_self / "cgroup"), env.cgroup_root)
    return CpuTopology(cpus, _core_ids(cpus, env.sys_cpu), quota, source="affinity + cgroup")
