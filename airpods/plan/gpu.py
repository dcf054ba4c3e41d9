"""GPU detection: an ordered list of side-effect-free probes that return typed results.

Probes read only what `ProbeEnv` points them at (PATH, CDI directories, a device root), so
tests use a fake `nvidia-smi`, a temp CDI dir and a temp /dev. Nothing here reads or writes
os.environ; the application builds the ProbeEnv."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

VARIANTS = ("cpu", "cuda", "rocm", "vulkan")
CDI_FIX = "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"


@dataclass(frozen=True)
class ProbeEnv:
    path: str = "/usr/local/bin:/usr/bin:/bin"
    cdi_dirs: tuple[Path, ...] = (Path("/etc/cdi"), Path("/var/run/cdi"))
    dev_root: Path = Path("/dev")
    selinux_enforce: Path = Path("/sys/fs/selinux/enforce")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ProbeEnv:
        cdi = environ.get("AIRPODS_CDI_DIRS")
        return cls(
            path=environ.get("PATH", cls.path),
            cdi_dirs=tuple(Path(p) for p in cdi.split(":")) if cdi else cls.cdi_dirs,
            dev_root=Path(environ.get("AIRPODS_DEV_ROOT", "/dev")),
            selinux_enforce=Path(environ.get("AIRPODS_SELINUX_ENFORCE", str(cls.selinux_enforce))),
        )


@dataclass(frozen=True)
class ProbeResult:
    probe: str
    variant: str | None  # the variant this probe makes available, None when it found nothing usable
    reason: str
    devices: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    warning: str | None = None


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


def _selinux_enforcing(env: ProbeEnv) -> bool:
    try:
        return env.selinux_enforce.read_text().strip() == "1"
    except OSError:
        return False


def _cdi_has_nvidia(env: ProbeEnv) -> Path | None:
    for directory in env.cdi_dirs:
        try:
            files = sorted(directory.iterdir())
        except OSError:
            continue
        for spec in files:
            if spec.suffix not in (".yaml", ".yml", ".json"):
                continue
            try:
                text = spec.read_text(errors="replace")
            except OSError:
                continue
            if "nvidia.com/gpu" in text or ("nvidia.com" in text and "kind" in text):
                return spec
    return None


def probe_nvidia(env: ProbeEnv) -> ProbeResult:
    smi = shutil.which("nvidia-smi", path=env.path)
    if not smi:
        return ProbeResult("nvidia", None, "nvidia-smi not found on PATH")
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return ProbeResult("nvidia", None, f"nvidia-smi did not answer: {exc}")
    gpus = [line for line in out.stdout.splitlines() if line.startswith("GPU ")]
    if out.returncode != 0 or not gpus:
        detail = (out.stderr or out.stdout).strip().splitlines()[:1]
        return ProbeResult("nvidia", None, "nvidia-smi found no GPU" + (f": {detail[0]}" if detail else ""))
    spec = _cdi_has_nvidia(env)
    names = ", ".join(g.split(" (")[0] for g in gpus)
    if spec is None:
        dirs = " or ".join(str(d) for d in env.cdi_dirs)
        return ProbeResult(
            "nvidia", None, f"{len(gpus)} NVIDIA GPU(s) but no CDI spec in {dirs}",
            warning=(f"NVIDIA GPU present ({names}) but Podman cannot use it: no CDI spec in {dirs}. "
                     f"Falling back to CPU. Fix: {CDI_FIX}"),
        )
    sec = ("label=disable",) if _selinux_enforcing(env) else ()
    return ProbeResult("nvidia", "cuda", f"{len(gpus)} NVIDIA GPU(s) ({names}); CDI spec {spec}",
                       devices=("nvidia.com/gpu=all",), security_opt=sec)


def probe_rocm(env: ProbeEnv) -> ProbeResult:
    kfd = env.dev_root / "kfd"
    renders = sorted((env.dev_root / "dri").glob("renderD*")) if (env.dev_root / "dri").is_dir() else []
    if kfd.exists() and renders:
        return ProbeResult("rocm", "rocm", f"{kfd} and {len(renders)} render node(s)",
                           devices=("/dev/kfd", "/dev/dri"))
    if kfd.exists():
        return ProbeResult("rocm", None, f"{kfd} present but no {env.dev_root}/dri/renderD*")
    return ProbeResult("rocm", None, f"no {kfd}")


def probe_vulkan(env: ProbeEnv) -> ProbeResult:
    dri = env.dev_root / "dri"
    renders = sorted(dri.glob("renderD*")) if dri.is_dir() else []
    if renders:
        return ProbeResult("vulkan", "vulkan", f"{len(renders)} render node(s) in {dri}",
                           devices=("/dev/dri",))
    return ProbeResult("vulkan", None, f"no render node in {dri}")


PROBES = (probe_nvidia, probe_rocm, probe_vulkan)


@functools.lru_cache(maxsize=8)
def detect(env: ProbeEnv) -> tuple[ProbeResult, ...]:
    """Run every probe once per process and environment."""
    return tuple(probe(env) for probe in PROBES)


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
