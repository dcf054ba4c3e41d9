"""GPU probes: an ordered list of side-effect-free functions that return typed results (which
accelerator Podman can use), and the inventory of every GPU (index, UUID, name, memory).

Probes read only what `ProbeEnv` points them at (PATH, CDI directories, a device root), so
tests use a fake `nvidia-smi`/`rocm-smi`, a temp CDI dir and a temp /dev. Nothing here reads or
writes os.environ; the application builds the ProbeEnv."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

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


def _selinux_enforcing(env: ProbeEnv) -> bool:
    try:
        return env.selinux_enforce.read_text().strip() == "1"
    except OSError:
        return False


def _cdi_specs(env: ProbeEnv) -> Iterator[tuple[Path, str]]:
    """(path, text) of every CDI spec file in the CDI directories."""
    for directory in env.cdi_dirs:
        try:
            files = sorted(directory.iterdir())
        except OSError:
            continue
        for spec in files:
            if spec.suffix not in (".yaml", ".yml", ".json"):
                continue
            try:
                yield spec, spec.read_text(errors="replace")
            except OSError:
                continue


def _cdi_has_nvidia(env: ProbeEnv) -> Path | None:
    for spec, text in _cdi_specs(env):
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




@dataclass(frozen=True)
class Gpu:
    """One GPU as the driver reports it (memory in bytes)."""

    index: int
    uuid: str
    name: str
    total: int
    free: int
    vendor: str = "nvidia"  # nvidia | amd
    compute_cap: str = ""
    driver: str = ""
    cdi_name: str | None = None  # the CDI device name that gives a container this GPU alone

    def to_json(self) -> dict:
        return {"index": self.index, "uuid": self.uuid, "name": self.name, "memory_total": self.total,
                "memory_free": self.free, "vendor": self.vendor, "compute_cap": self.compute_cap or None,
                "driver": self.driver or None}


NVIDIA_QUERY = "index,uuid,name,memory.total,memory.free,compute_cap,driver_version"


def _cdi_names(env: ProbeEnv) -> set[str]:
    """The nvidia.com/gpu device names the CDI specs define ("0", "GPU-<uuid>", "all", ...)."""
    names: set[str] = set()
    for spec, text in _cdi_specs(env):
        if "nvidia.com" not in text:
            continue
        if spec.suffix == ".json":
            with contextlib.suppress(ValueError, AttributeError):
                names |= {str(d.get("name")) for d in json.loads(text).get("devices", [])}
        else:  # YAML, as nvidia-ctk writes it: "- name: 0" / "name: GPU-..." under devices
            names |= {m.strip("'\"") for m in re.findall(r"^\s*-?\s*name:\s*(\S+)\s*$", text, re.M)}
    return names


def _run(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def nvidia_inventory(env: ProbeEnv) -> tuple[Gpu, ...]:
    smi = shutil.which("nvidia-smi", path=env.path)
    out = _run([smi, f"--query-gpu={NVIDIA_QUERY}", "--format=csv,noheader,nounits"]) if smi else None
    if not out:
        return ()
    cdi = _cdi_names(env)
    gpus = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 5 or not cells[0].isdigit() or not cells[3].isdigit() or not cells[4].isdigit():
            continue
        index, uuid = int(cells[0]), cells[1]
        name = f"nvidia.com/gpu={index}" if str(index) in cdi else f"nvidia.com/gpu={uuid}" if uuid in cdi else None
        gpus.append(Gpu(index, uuid, cells[2], int(cells[3]) << 20, int(cells[4]) << 20, "nvidia",
                        cells[5] if len(cells) > 5 else "", cells[6] if len(cells) > 6 else "", name))
    return tuple(gpus)


def amd_inventory(env: ProbeEnv) -> tuple[Gpu, ...]:
    """rocm-smi --showmeminfo vram --csv: device,VRAM Total Memory (B),VRAM Total Used Memory (B)."""
    smi = shutil.which("rocm-smi", path=env.path)
    out = _run([smi, "--showmeminfo", "vram", "--csv"]) if smi else None
    if not out:
        return ()
    names: dict[int, str] = {}
    product = _run([smi, "--showproductname", "--csv"]) or ""
    for line in product.splitlines()[1:]:
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 2 and (m := re.search(r"(\d+)", cells[0])):
            names[int(m.group(1))] = next((c for c in cells[1:] if c), "AMD GPU")
    gpus = []
    for line in out.splitlines()[1:]:
        cells = [c.strip() for c in line.split(",")]
        m = re.search(r"(\d+)", cells[0]) if cells else None
        if m and len(cells) >= 3 and cells[1].isdigit() and cells[2].isdigit():
            index = int(m.group(1))
            gpus.append(Gpu(index, f"card{index}", names.get(index, "AMD GPU"), int(cells[1]),
                            int(cells[1]) - int(cells[2]), "amd"))
    return tuple(gpus)


@functools.lru_cache(maxsize=8)
def inventory(env: ProbeEnv) -> tuple[Gpu, ...]:
    """Every GPU on this machine (NVIDIA first, else AMD); () when none can be asked."""
    return nvidia_inventory(env) or amd_inventory(env)
