"""Download a GGUF from Hugging Face (`org/repo/path/file.gguf`) into the model volume:
resumable, with progress, verified against the sha256 the hub publishes (the tree listing's LFS
object id); a file with no published hash is kept but reported unverified, never resumed on trust."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airpods.errors import RuntimeFailure, UsageError
from airpods.models import hub_http
from airpods.models.hub_http import DEFAULT_ENDPOINT
from airpods.models.store import CHUNK, ModelStore, check_name, inside

__all__ = ["DEFAULT_ENDPOINT", "Pulled", "parse_ref", "pull"]
_SHA256 = re.compile(r"[0-9a-f]{64}")


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


@dataclass(frozen=True)
class Pulled:
    name: str
    sha256: str  # of the bytes written
    verified: bool  # against the sha256 the hub published; False: it published none


def published_sha256(repo: str, file_path: str, revision: str, environ: Mapping[str, str]) -> str | None:
    """The sha256 the hub's tree listing gives for one file (its LFS object id); None when the
    listing cannot be had or has none (a mirror without the API)."""
    from airpods.errors import AirpodsError
    from airpods.models.hub_repo import list_files

    try:
        files = list_files(repo, revision, hub_http.endpoint(environ), environ)
    except AirpodsError:
        return None
    return next((f.sha256 for f in files if f.path == file_path and f.sha256), None)


def _expected(listed: str | None, head: Any) -> str | None:
    """The sha256 to verify against: the listing's, else a 64-hex X-Linked-Etag (the hub's LFS
    object id); never a plain ETag, which a mirror may compute any way it likes."""
    for raw in (listed, head.headers.get("X-Linked-Etag")):
        value = (raw or "").strip().strip('"').lower().removeprefix("w/").strip('"')
        if _SHA256.fullmatch(value):
            return value
    return None


def pull(store: ModelStore, ref: str, *, revision: str = "main", environ: Mapping[str, str] = os.environ,
         progress: Callable[[int, int | None], None] | None = None, force: bool = False,
         sha256: str | None = None) -> Pulled:
    """Download one file; `sha256` is the listing's for it (looked up when not given). Without a
    published hash the download is kept but reported unverified, and a partial file is never resumed."""
    import requests

    repo, file_path, name = parse_ref(ref)
    check_name(name)
    endpoint = hub_http.endpoint(environ)
    url = f"{endpoint}/{repo}/resolve/{quote(revision)}/{quote(file_path)}"
    headers = hub_http.headers(environ)
    root = store.root(create=True)
    assert root is not None
    dest = inside(root, name)
    if dest.exists() and not force:
        raise UsageError(f"{name} is already in the model volume {store.volume}", hint="use --force to replace it")
    listed = sha256 if sha256 is not None else published_sha256(repo, file_path, revision, environ)
    part = root / f".{name}.part"
    try:
        head = requests.head(url, headers=headers, allow_redirects=False, timeout=30)
        if head.status_code in (401, 403):
            raise RuntimeFailure(f"{ref}: access denied (HTTP {head.status_code})",
                                 hint="a gated or private repo needs HF_TOKEN with access")
        if head.status_code == 404:
            raise UsageError(f"{ref} was not found on {endpoint} (revision {revision})")
        if head.status_code >= 400:
            raise RuntimeFailure(f"{ref}: HTTP {head.status_code} from {endpoint}")
        expected = _expected(listed, head)
        size = head.headers.get("X-Linked-Size") or head.headers.get("Content-Length")
        total = int(size) if size and size.isdigit() else None
        have = part.stat().st_size if part.exists() else 0
        if have and (expected is None or (total is not None and have > total)):
            part.unlink()  # nothing to check a resumed file against: start over
            have = 0
        digest = _sha_of(part) if have else hashlib.sha256()
        if total is None or have < total:
            digest = _download(url, headers, part, have, digest, total, ref, progress)
    except requests.RequestException as exc:
        raise RuntimeFailure(f"downloading {ref} from {endpoint} failed: {hub_http.describe(exc, environ)}",
                             hint="run the same command again to resume; set HF_ENDPOINT for a mirror") from exc
    except OSError as exc:
        raise store.write_failed(name, exc, resumable=True) from exc
    actual = digest.hexdigest()
    if expected is not None and actual != expected:
        part.unlink(missing_ok=True)
        raise RuntimeFailure(f"{name}: sha256 mismatch (the hub published {expected}, the download is {actual}); "
                             "the download was deleted",
                             hint="a mirror (HF_ENDPOINT) serving other bytes, or a corrupted transfer: try again")
    with open(part, "rb") as fh:
        if fh.read(4) != b"GGUF":
            part.unlink()
            raise RuntimeFailure(f"{ref} is not a GGUF file; the download was deleted")
    os.chmod(part, 0o644)
    part.replace(dest)
    store.record_download(root, name, actual, dest.stat().st_size, f"{endpoint}/{repo}@{revision}/{file_path}",
                          verified=expected is not None)
    return Pulled(name, actual, expected is not None)


def _download(url: str, headers: dict[str, str], part: Path, have: int, digest: Any, total: int | None, ref: str,
              progress: Callable[[int, int | None], None] | None) -> Any:
    import requests

    get_headers = dict(headers, **({"Range": f"bytes={have}-"} if have else {}))
    with requests.get(url, headers=get_headers, stream=True, timeout=60) as resp:
        if resp.status_code == 200 and have:  # the server ignored the range: start over
            have, digest, mode = 0, hashlib.sha256(), "wb"
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
    return digest
