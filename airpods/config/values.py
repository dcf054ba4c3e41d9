"""The checks of single config values the schema applies (names, sizes, image references, text
that ends up in files other programs read). Plain functions, no pydantic: the export writers use
`has_control` too."""

from __future__ import annotations

import re

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*\Z")
MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?[bkmgBKMG]?\Z")
MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]*\Z")
GGUF_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*\.gguf\Z")


def check_name(value: str, what: str) -> str:
    if not NAME.match(value):
        raise ValueError(
            f"{what} {value!r} must be lower-case letters, digits, '.', '_' or '-' "
            "and start with a letter or digit"
        )
    return value


# What cap_add may name (Linux capabilities, without CAP_).
CAPABILITIES = frozenset((
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE", "CHOWN",
    "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE",
    "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE",
    "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN", "SYS_BOOT",
    "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE",
    "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM",
))


def check_capability(value: str) -> str:
    """A Linux capability as Podman takes it: CHOWN (cap_chown and CAP_CHOWN are read the same)."""
    name = value.strip().upper().removeprefix("CAP_")
    if name not in CAPABILITIES:
        raise ValueError(f"{value!r} is not a Linux capability (e.g. CHOWN, NET_BIND_SERVICE, DAC_OVERRIDE)")
    return name


def check_tmpfs_path(path: str) -> str:
    if not path.startswith("/") or has_control(path) or "," in path or ":" in path:
        raise ValueError(f"tmpfs path {path!r} must be an absolute path (no ',', ':' or line break)")
    return path


def check_size(value: str, what: str) -> str:
    if not MEMORY.match(value):
        raise ValueError(f"{what} {value!r} is not a size like 64m or 1g")
    return value


def is_ip(name: str) -> bool:
    """Whether `name` is an IPv4 or IPv6 address (not a DNS name)."""
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_token(value: str) -> bool:
    """One token as a bearer header carries it: printable ASCII, no space (a key, a secret)."""
    return bool(value) and all(33 <= ord(c) < 127 for c in value)


def has_control(value: str) -> bool:
    """A line break or another control character: in a file airpods writes (a Quadlet unit, the
    Caddyfile) such a value could start a line of its own."""
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def plain_text(value: str, what: str) -> str:
    if has_control(value):
        raise ValueError(f"{what} {value!r} holds a line break or another control character")
    return value


def airpods_labels() -> set[str]:
    """The labels airpods writes on what it creates (airpods/labels.py's LABEL_*): a user's may not replace one."""
    from airpods import labels

    return {value for name, value in vars(labels).items() if name.startswith("LABEL_") and isinstance(value, str)}


def check_image_ref(ref: str) -> str:
    """An image reference must name its registry: Podman's short-name resolution is ambiguous."""
    if not ref or any(c.isspace() for c in ref):
        raise ValueError(f"image {ref!r} is not a valid image reference")
    first = ref.split("/", 1)[0]
    if "/" not in ref or not ("." in first or ":" in first or first == "localhost"):
        raise ValueError(
            f"image {ref!r} has no registry; write it in full, e.g. 'docker.io/library/{ref}' "
            "or 'ghcr.io/org/name:tag'"
        )
    return ref

