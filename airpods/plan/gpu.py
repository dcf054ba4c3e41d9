"""Which accelerator variant a service runs with, from the GPU probes' results (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from airpods.probes.gpu import ProbeResult

VARIANTS = ("cpu", "cuda", "rocm", "vulkan")


@dataclass(frozen=True)
class GpuChoice:
    """The variant one service runs with, and why."""

    variant: str
    devices: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    reason: str = ""
    warnings: tuple[str, ...] = field(default=())

    @property
    def accelerated(self) -> bool:
        return self.variant != "cpu"


def choose(results: tuple[ProbeResult, ...], available: set[str], *, forced: str | None = None,
           forced_by: str = "", cpu_only: str | None = None) -> GpuChoice:
    """Pick the variant for one service given the variants it has images for.

    `forced`: a variant named by AIRPODS_GPU or gpu.variant; `cpu_only`: why the GPU is off."""
    if cpu_only:  # the user chose CPU: no warnings about unused GPUs
        return GpuChoice("cpu", reason=cpu_only)
    warnings = tuple(r.warning for r in results if r.warning)
    if forced:
        hit = next((r for r in results if r.variant == forced), None)
        return GpuChoice(forced, hit.devices if hit else (), hit.security_opt if hit else (),
                         reason=f"forced by {forced_by}", warnings=warnings)
    for result in results:
        if result.variant is None:
            continue
        if result.variant in available:
            return GpuChoice(result.variant, result.devices, result.security_opt,
                             reason=result.reason, warnings=warnings)
        warnings += (f"{result.reason}: usable as '{result.variant}', but this service has no "
                     f"images.{result.variant}; running on CPU",)
    return GpuChoice("cpu", reason="no usable GPU found", warnings=warnings)
