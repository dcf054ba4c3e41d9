"""Download a GGUF from Hugging Face (`org/repo/path/file.gguf`) into the model volume:
resumable, with progress, verified against the hub's sha256 (the LFS object id)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

from airpods.errors import RuntimeFailure, UsageError
from airpods.models.store import CHUNK, ModelStore, check_name, inside

DEFAULT_ENDPOINT = "https://huggingface.co"


def parse_ref(ref: str) -> tuple[str, str, str]:
    """`org/repo/dir/file.gguf` → (org/repo, dir/file.gguf, file.gguf)."""
    parts = [p for p in ref.strip().split("/") if p]
    if ref.startswith(("http://", "https://")) or len(parts) < 3 or not parts[-1].endswith(".gguf"):
        raise UsageError(f"model reference {ref!r} must look like org/repo/file.gguf",
                         hint="e.g. airpods models pull bartowski/SmolLM2-135M-Instruct-GGUF/"
                              "SmolLM2-135M-Instruct-Q4_K_M.gguf")
    return "/".join(parts[:2]), "/".join(parts[2:]), parts[-1]


def _sha_of(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest


def pull(store: ModelStore, ref: str, *, revision: str = "main", environ: Mapping[str, str] = os.environ,
         progress: Callable[[int, int | None], None] | None = None, force: bool = False) -> str:
    import requests

    repo, file_path, name = parse_ref(ref)
    check_name(name)
    endpoint = environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
    url = f"{endpoint}/{repo}/resolve/{quote(revision)}/{quote(file_path)}"
    headers = {"User-Agent": "airpods"}
    if environ.get("HF_TOKEN"):
        headers["Authorization"] = f"Bearer {environ['HF_TOKEN']}"
    root = store.root(create=True)
    assert root is not None
    dest = inside(root, name)
    if dest.exists() and not force:
        raise UsageError(f"{name} is already in the model volume {store.volume}", hint="use --force to replace it")
    try:
        head = requests.head(url, headers=headers, allow_redirects=False, timeout=30)
        if head.status_code in (401, 403):
            raise RuntimeFailure(f"{ref}: access denied (HTTP {head.status_code})",
                                 hint="a gated or private repo needs HF_TOKEN with access")
        if head.status_code == 404:
            raise UsageError(f"{ref} was not found on {endpoint} (revision {revision})")
        if head.status_code >= 400:
            raise RuntimeFailure(f"{ref}: HTTP {head.status_code} from {endpoint}")
        expected = (head.headers.get("X-Linked-Etag") or head.headers.get("ETag") or "").strip('"').lower()
        expected = expected.removeprefix("w/").strip('"')
        size = head.headers.get("X-Linked-Size") or head.headers.get("Content-Length")
        total = int(size) if size and size.isdigit() else None
        part = root / f".{name}.part"
        have = part.stat().st_size if part.exists() else 0
        if total is not None and have > total:
            part.unlink()
            have = 0
        digest = _sha_of(part) if have else hashlib.sha256()
        if total is None or have < total:
            get_headers = dict(headers, **({"Range": f"bytes={have}-"} if have else {}))
            with requests.get(url, headers=get_headers, stream=True, timeout=60) as resp:
                if resp.status_code == 200 and have:  # server ignored the range: start over
                    have, digest = 0, hashlib.sha256()
                    mode = "wb"
                elif resp.status_code in (200, 206):
                    mode = "ab" if have else "wb"
                else:
                    raise RuntimeFailure(f"{ref}: download failed with HTTP {resp.status_code}")
                done = have
                with open(part, mode) as out:
                    for chunk in resp.iter_content(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
    except OSError as exc:
        if isinstance(exc, requests.RequestException):
            raise RuntimeFailure(f"downloading {ref} from {endpoint} failed: {exc}",
                                 hint="run the same command again to resume; set HF_ENDPOINT for a mirror") from exc
        raise store.write_failed(name, exc, resumable=True) from exc
    except requests.RequestException as exc:
        raise RuntimeFailure(f"downloading {ref} from {endpoint} failed: {exc}",
                             hint="run the same command again to resume; set HF_ENDPOINT for a mirror") from exc
    actual = digest.hexdigest()
    if len(expected) == 64 and actual != expected:
        part.unlink(missing_ok=True)
        raise RuntimeFailure(f"{name}: sha256 mismatch (expected {expected}, got {actual}); the download was deleted")
    with open(part, "rb") as fh:
        if fh.read(4) != b"GGUF":
            part.unlink()
            raise RuntimeFailure(f"{ref} is not a GGUF file; the download was deleted")
    os.chmod(part, 0o644)
    part.replace(dest)
    store.record_download(root, name, actual, dest.stat().st_size, f"{endpoint}/{repo}@{revision}/{file_path}")
    return name
