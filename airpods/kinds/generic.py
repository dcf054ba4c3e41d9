"""kind = "generic": any image, started as configured; no check of its own, no hardening it knows."""

from airpods.kinds.base import ServiceKind

KIND = ServiceKind("generic", "a generic service")
