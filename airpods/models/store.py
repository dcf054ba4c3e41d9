"""The llama.cpp model volume: import, list, remove GGUF files, with a sha256 manifest.

Files are written through the volume's mountpoint on this host (Podman's local volume driver),
as `.<name>.part` first (an import: `.<name>.import-<pid>.part`) and renamed when complete, so a
container never sees half a model. The manifest changes under a lock (`.airpods-models.lock`)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airpods.errors import RuntimeFailure, UsageError
from airpods.models.gguf import GGUFError, is_gguf, read_info
from airpods.models.split_names import is_later_part, split_parts
from airpods.probes.process import process_exists

if TYPE_CHECKING:
    from airpods.runtime.port import ContainerRuntime

MANIFEST = ".airpods-models.json"
MANIFEST_LOCK = ".airpods-models.lock"
CHUNK = 4 << 20
Progress = Callable[[int, int | None], None]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*\.gguf\Z")


@dataclass(frozen=True)
class ModelEntry:
    file: str
    size: int
    architecture: str | None
    quantization: str | None
    sha256: str | None
    source: str | None
    parts: int = 1  # a split model: how many files (the first part's name stands for all)
    mmproj: str | None = None  # its vision projector in the volume, when it came with one

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "size": self.size, "architecture": self.architecture,
                "quantization": self.quantization, "sha256": self.sha256, "source": self.source,
                "parts": self.parts, "mmproj": self.mmproj, "vision": self.mmproj is not None}


def check_name(name: str) -> str:
    """Every model name a user gives (rm, import --name, pull, fit, ...) passes here first: a plain
    file name in the volume, never a path."""
    if not _NAME.match(name) or ".." in name:
        raise UsageError(f"model name {name!r} must be a plain file name ending in .gguf "
                         "(letters, digits, '.', '_', '+', '-'; no '/', no '..')",
                         hint="see the names with `airpods models list`")
    return name


def inside(root: Path, name: str) -> Path:
    """root/name for a checked name, refusing a symlink (or anything) that leads out of root."""
    path = root / check_name(name)
    if path.is_symlink() or path.resolve().parent != root.resolve():
        raise UsageError(f"{name} in the model volume is a link or leads outside it; airpods does not touch it",
                         hint=f"look at it yourself: ls -l {path}")
    return path


def is_projector(name: str) -> bool:
    return name.lower().startswith("mmproj")


def read_manifest(root: Path) -> dict[str, dict[str, Any]]:
    """The volume's manifest (sha256, source, projector per model); {} when there is none."""
    try:
        data = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}  # an entry that is not an object: none


def projectors(root: Path) -> dict[str, str]:
    """model file -> its vision projector's file, from the volume's manifest (read from disk)."""
    data = read_manifest(root)
    return {name: str(meta["mmproj"]) for name, meta in data.items()
            if isinstance(meta, dict) and meta.get("mmproj") and (root / str(meta["mmproj"])).is_file()}


class ModelStore:
    def __init__(self, runtime: ContainerRuntime, volume: str, labels: dict[str, str] | None = None):
        self.cleared: list[tuple[str, int]] = []  # stale partial imports the last import removed
        self.runtime = runtime
        self.volume = volume
        self.labels = labels  # stamped on the volume when airpods creates it

    def root(self, *, create: bool) -> Path | None:
        if not self.runtime.volume_exists(self.volume):
            if not create:
                return None
            self.runtime.ensure_volume(self.volume, self.labels)
        path = self.runtime.volume_path(self.volume)
        if not path or not Path(path).is_dir():
            raise RuntimeFailure(f"the model volume {self.volume} is not on this machine's disk",
                                 hint="run airpods on the machine that runs Podman (local volumes only)")
        return Path(path)

    # manifest -----------------------------------------------------------------------------
    def _manifest(self, root: Path) -> dict[str, dict[str, Any]]:
        return read_manifest(root)

    @staticmethod
    @contextlib.contextmanager
    def _changing(root: Path) -> Iterator[dict[str, dict[str, Any]]]:
        """Read, change, write the manifest under a lock: imports, pulls and removals at once each
        keep the others' entries (without it, 8 imports at once lost entries every time)."""
        with open(root / MANIFEST_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = read_manifest(root)
            yield data
            ModelStore._write_manifest(root, data)

    def _record(self, root: Path, name: str, **fields: Any) -> None:
        with self._changing(root) as data:
            data[name] = {**fields, "recorded_at": int(time.time())}

    @staticmethod
    def _write_manifest(root: Path, data: dict) -> None:
        """Write-then-rename, through a name of this writer's own: a failed write (a full disk)
        leaves the old manifest as it was."""
        tmp = root / f".{MANIFEST}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            tmp.replace(root / MANIFEST)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def clear_stale_imports(self, root: Path) -> list[tuple[str, int]]:
        """Remove the partial files of imports whose process is gone (killed midway): (name,
        bytes) each. A pull's `.NAME.part` is never touched: it is kept to resume."""
        removed = []
        for part in root.glob(".*.import-*.part"):
            pid = part.name.rsplit(".import-", 1)[1].removesuffix(".part")
            # gone: removed; another user's process under that pid: not ours to judge, kept
            if pid.isdigit() and process_exists(int(pid)) is False and part.is_file() and not part.is_symlink():
                size = part.stat().st_size
                part.unlink(missing_ok=True)
                removed.append((part.name, size))
        return removed

    # operations ---------------------------------------------------------------------------
    def import_file(self, src: Path, name: str | None = None, progress: Progress | None = None,
                    *, force: bool = False) -> ModelEntry:
        if not src.is_file():
            raise UsageError(f"{src} is not a file")
        if not is_gguf(src):
            raise UsageError(f"{src} is not a GGUF model (its first bytes are not 'GGUF')",
                             hint="llama.cpp loads .gguf files; convert other formats with llama.cpp's "
                                  "convert_hf_to_gguf.py")
        name = check_name(name or src.name)
        root = self.root(create=True)
        assert root is not None
        dest = inside(root, name)
        if dest.exists() and not force:
            raise UsageError(f"{name} is already in the model volume {self.volume}",
                             hint="use --force to replace it, or --name to import under another name")
        total = src.stat().st_size
        self.cleared = self.clear_stale_imports(root)
        part = root / f".{name}.import-{os.getpid()}.part"  # its own: imports of one name at once
        digest = hashlib.sha256()
        done = 0
        try:
            with open(src, "rb") as fin, open(part, "wb") as fout:
                while chunk := fin.read(CHUNK):
                    fout.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
                fout.flush()
                os.fsync(fout.fileno())
            os.chmod(part, 0o644)
            self._record(root, name, sha256=digest.hexdigest(), size=total, source=str(src.resolve()))
        except OSError as exc:
            part.unlink(missing_ok=True)  # nothing half-written stays behind; the manifest is untouched
            raise self.write_failed(name, exc) from exc
        part.replace(dest)
        return self.entry(root, name)

    def write_failed(self, name: str, exc: OSError, *, resumable: bool = False) -> RuntimeFailure:
        import errno

        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            kept = "the partial download is kept to resume" if resumable else "nothing was kept"
            return RuntimeFailure(f"no space left in the model volume {self.volume} while writing {name}; "
                                  f"{kept} and the models already there are intact",
                                  hint="free space (airpods models rm NAME, or on the volume's disk), then run "
                                       "the same command again")
        return RuntimeFailure(f"writing {name} into the model volume {self.volume} failed: {exc.strerror or exc}")

    def entry(self, root: Path, name: str) -> ModelEntry:
        """One model; a split model is its first part's name, with every part's size added up."""
        path = root / name
        try:
            info = read_info(path)
            arch, quant = info.architecture, info.quantization
        except (GGUFError, OSError):
            arch = quant = None
        meta = self._manifest(root).get(name, {})
        parts = split_parts(name)
        size = sum((root / p).stat().st_size for p in parts if (root / p).is_file())
        mmproj = meta.get("mmproj") if (root / str(meta.get("mmproj"))).is_file() else None
        return ModelEntry(name, size, arch, quant, meta.get("sha256"), meta.get("source"), len(parts), mmproj)

    def list(self) -> list[ModelEntry]:
        root = self.root(create=False)
        if root is None:
            return []
        return [self.entry(root, p.name) for p in sorted(root.glob("*.gguf"))
                if p.is_file() and not is_later_part(p.name) and not is_projector(p.name)]

    def remove(self, name: str) -> None:
        check_name(name)
        root = self.root(create=False)
        path = inside(root, name) if root is not None else None
        if path is None or not path.is_file():
            have = ", ".join(e.file for e in self.list()) or "none"
            raise UsageError(f"{name} is not in the model volume {self.volume} (models: {have})")
        with self._changing(root) as data:
            for part in split_parts(name):  # a split model goes whole
                inside(root, part).unlink(missing_ok=True)
                data.pop(part, None)
        # its projector stays: another quantization may use it

    def has(self, root: Path, name: str, sha256: str | None) -> bool:
        """Whether `name` is here already, with this sha256 (a pull of a split model resumes)."""
        return bool(sha256) and (root / name).is_file() and self._manifest(root).get(name, {}).get("sha256") == sha256

    def check_space(self, root: Path, needed: int, what: str) -> None:
        """Refuse before downloading what cannot fit (exit 1, nothing written)."""
        import shutil

        free = shutil.disk_usage(root).free
        if needed > free:
            raise RuntimeFailure(f"{what} needs {needed / 1e9:.1f} GB but the model volume {self.volume} has "
                                 f"{free / 1e9:.1f} GB free; nothing was downloaded",
                                 hint="free space (airpods models rm NAME), or pick a smaller quantization")

    def set_projector(self, root: Path, model: str, mmproj: str) -> None:
        with self._changing(root) as data:
            data.setdefault(model, {})["mmproj"] = mmproj

    def record_download(self, root: Path, name: str, sha256: str, size: int, source: str, *,
                        verified: bool) -> None:
        """`sha256` is of the bytes written; `verified` says whether it matched a published one."""
        self._record(root, name, sha256=sha256, size=size, source=source, verified=verified)
