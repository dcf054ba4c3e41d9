"""What a process may do, as the kernel says (/proc/PID/status): its effective capabilities and
whether it may gain privileges. Reads /proc only; returns data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Linux capability numbers (linux/capability.h), in order.
NAMES = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
         "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
         "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
         "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
         "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
         "CHECKPOINT_RESTORE")


@dataclass(frozen=True)
class ProcessPrivileges:
    effective: tuple[str, ...]  # capability names (CAP_ left out)
    no_new_privileges: bool


def capability_names(mask: int) -> tuple[str, ...]:
    return tuple(NAMES[i] if i < len(NAMES) else f"CAP_{i}" for i in range(mask.bit_length()) if mask >> i & 1)


INITS = ("catatonit", "podman-init", "tini", "dumb-init")


def main_process(pid: int, proc: Path = Path("/proc")) -> int:
    """The container's program: `pid` itself, or under an init (Podman's --init) its first child."""
    try:
        comm = (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return pid
    if comm not in INITS:
        return pid
    children = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text(errors="replace")
            except OSError:
                continue
            if any(line.split(":", 1)[1].strip() == str(pid) for line in status.splitlines()
                   if line.startswith("PPid:")):
                children.append(int(entry.name))
    return min(children) if children else pid


def privileges(pid: int, proc: Path = Path("/proc")) -> ProcessPrivileges | None:
    """None when the process is gone or its status cannot be read (another user's, here)."""
    if pid <= 0:
        return None
    try:
        text = (proc / str(pid) / "status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        mask = int(fields.get("CapEff", "").strip(), 16)
    except ValueError:
        return None
    return ProcessPrivileges(capability_names(mask), fields.get("NoNewPrivs", "0").strip() == "1")
