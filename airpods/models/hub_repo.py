"""A hub repository's GGUF files, the way people name them: `org/repo:Q4_K_M`.

Lists the repo (`/api/models/ORG/REPO/tree/REV?recursive=1`), groups its GGUFs by quantization
(the parts of a split model, `-00001-of-00003.gguf`, form one group; `mmproj-*` projectors are
kept apart), picks the group a tag names (case-insensitive; without a tag llama.cpp's default
Q4_K_M, else the only one), and reads a group's header with ranged GETs (never the weights)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from airpods.errors import RuntimeFailure, UsageError
from airpods.models import hub_http
from airpods.models.split_names import split_count, split_parts, split_stem

DEFAULT_QUANT = "Q4_K_M"  # llama.cpp's own default for -hf repo without a tag
_QUANT = re.compile(r"^(?:I?Q\d+(?:_[A-Z0-9]+)*|B?F(?:16|32)|TQ\d_\d|MXFP4(?:_MOE)?)\Z", re.IGNORECASE)
_REF = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<quant>[\w.-]+))?\Z")


@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int
    sha256: str | None = None


@dataclass
class Group:
    """One model of the repo: a quantization, in one file or the parts of a split."""

    quant: str
    stem: str
    files: list[RepoFile] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def name(self) -> str:
        """The model's name in the volume: its (first) file's name."""
        return self.files[0].path.rsplit("/", 1)[-1]


def parse_repo_ref(ref: str) -> tuple[str, str | None] | None:
    """`org/repo[:QUANT]` → (org/repo, QUANT or None); None when it is not of that form."""
    m = _REF.match(ref.strip())
    return (m.group("repo"), m.group("quant")) if m else None


def quant_of(path: str) -> str | None:
    """The quantization a GGUF's file name says (Q4_K_M, IQ4_XS, F16, BF16, UD-Q4_K_XL, ...)."""
    stem = split_stem(path.rsplit("/", 1)[-1])
    tokens = re.split(r"[-.]", stem)
    for i in range(len(tokens) - 1, -1, -1):
        if _QUANT.match(tokens[i]):
            quant = tokens[i].upper()
            return f"UD-{quant}" if i > 0 and tokens[i - 1].upper() == "UD" else quant
    return None


def groups(files: list[RepoFile]) -> tuple[list[Group], list[RepoFile]]:
    """(the repo's models by quantization, its mmproj files)."""
    models: dict[str, Group] = {}
    projectors = []
    for f in sorted(files, key=lambda f: f.path):
        if not f.path.endswith(".gguf"):
            continue
        name = f.path.rsplit("/", 1)[-1]
        if name.lower().startswith("mmproj"):
            projectors.append(f)
            continue
        stem = split_stem(f.path)
        group = models.setdefault(stem, Group(quant_of(f.path) or name.removesuffix(".gguf"), stem))
        group.files.append(f)
    return sorted(models.values(), key=lambda g: (g.quant, g.stem)), projectors


def choose(found: list[Group], tag: str | None, repo: str) -> Group:
    """The group a tag names; exit 2 listing the choices when it names none or several."""
    have = ", ".join(dict.fromkeys(g.quant for g in found)) or "none"
    if not found:
        raise UsageError(f"{repo} has no GGUF files", hint="pick a repo whose name ends in -GGUF, e.g. "
                                                           "bartowski/SmolLM2-135M-Instruct-GGUF")
    want = (tag or DEFAULT_QUANT).upper()
    hits = [g for g in found if g.quant.upper() == want]
    if not hits and tag is None and len(found) == 1:
        return found[0]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise UsageError(f"{repo}:{want} names {len(hits)} models", details=[g.stem for g in hits],
                         hint=f"pull one by its file: airpods models pull {repo}/{hits[0].files[0].path}")
    what = f"no {want} quantization" if tag else f"no {DEFAULT_QUANT} (the default) and {len(found)} to choose from"
    raise UsageError(f"{repo} has {what}", details=[f"quantizations: {have}"],
                     hint=f"name one: airpods models pull {repo}:{found[0].quant}  (see: airpods models pull "
                          f"{repo} --list)")


def _denied(repo: str, status: int, environ: Mapping[str, str]) -> RuntimeFailure:
    token = "HF_TOKEN is set but has no access to it" if hub_http.token(environ) else "no HF_TOKEN is set"
    return RuntimeFailure(f"{repo}: access denied (HTTP {status}); {token}",
                          hint="a gated or private repo: accept its terms on the hub, then export HF_TOKEN=hf_...")


def _next_page(resp: Any, endpoint: str) -> str | None:
    """The hub pages a long listing with `Link: <URL>; rel="next"` (requests parses it). Followed
    only on the endpoint's own scheme, host and port: HF_TOKEN goes with every request, and a
    listing may not send it anywhere else (RuntimeFailure)."""
    from urllib.parse import urljoin, urlsplit

    link = (resp.links.get("next") or {}).get("url")
    if not link:
        return None
    url = urljoin(resp.url or endpoint, link)

    def origin(u: str) -> tuple:
        parts = urlsplit(u)
        return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)

    if origin(url) != origin(endpoint):
        raise RuntimeFailure(f"the hub's listing at {endpoint} points its next page at another server "
                             f"({urlsplit(url).scheme}://{urlsplit(url).netloc}); not followed, so HF_TOKEN stays "
                             "with the hub", hint="check HF_ENDPOINT: it should be the hub (or a mirror) itself")
    return url


def list_files(repo: str, revision: str, endpoint: str, environ: Mapping[str, str]) -> list[RepoFile]:
    """Every file of the repo, following the listing's pages."""
    import requests

    url: str | None = f"{endpoint}/api/models/{repo}/tree/{quote(revision, safe='')}?recursive=1"
    headers = hub_http.headers(environ)
    out: list[RepoFile] = []
    pages = 0
    while url is not None:
        try:
            resp = requests.get(url, headers=headers, timeout=30)
        except requests.RequestException as exc:
            raise RuntimeFailure(f"listing {repo} on {endpoint} failed: {hub_http.describe(exc, environ)}",
                                 hint="check the network, or set HF_ENDPOINT for a mirror") from exc
        if resp.status_code in (401, 403):
            raise _denied(repo, resp.status_code, environ)
        if resp.status_code == 404:
            raise UsageError(f"{repo} was not found on {endpoint} (revision {revision})",
                             hint="check the spelling: org/repo, as on the hub's page")
        if resp.status_code >= 400:
            raise RuntimeFailure(f"listing {repo}: HTTP {resp.status_code} from {endpoint}")
        for item in resp.json():
            if isinstance(item, dict) and item.get("type") == "file" and item.get("path"):
                lfs = item.get("lfs") or {}
                out.append(RepoFile(str(item["path"]), int(lfs.get("size") or item.get("size") or 0), lfs.get("oid")))
        pages += 1
        url = _next_page(resp, endpoint)
        if pages >= 1000:
            raise RuntimeFailure(f"listing {repo}: more than 1000 pages from {endpoint}; stopped")
    return out


def missing_parts(group: Group) -> list[str]:
    """The parts of a split model the listing lacks (`-0000K-of-0000N`: all N must be there)."""
    first = group.files[0].path
    folder = first.rpartition("/")[0]
    expected = split_parts(first.rpartition("/")[2])
    have = {f.path.rpartition("/")[2] for f in group.files if f.path.rpartition("/")[0] == folder}
    if len(expected) == 1 and len(group.files) > 1:  # parts without their first
        count = next((c for c in (split_count(f.path) for f in group.files) if c), 0)
        stem = group.stem.rpartition("/")[2]
        expected = [f"{stem}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]
    return [name for name in expected if name not in have]


def check_complete(group: Group, repo: str) -> None:
    """Exit 1 before any byte is downloaded when a split model's listing lacks a part."""
    gone = missing_parts(group)
    if gone:
        raise RuntimeFailure(f"{repo}:{group.quant} is split in parts and the repo lacks {len(gone)} of them; "
                             "nothing was downloaded", details=[f"missing: {n}" for n in gone],
                             hint="the upload may be unfinished: try again later, or pick another quantization")


FIRST_READ = 512 << 10  # most headers fit (a 50k vocabulary is ~1.7 MiB: a few more reads)
MIN_READ = 256 << 10
MAX_HEADER = 64 << 20


def read_remote_header(repo: str, path: str, revision: str, endpoint: str, environ: Mapping[str, str],
                       counter: list[int] | None = None) -> Any:
    """The GGUF header of a file on the hub, from ranged GETs, each continuing where the last one
    stopped (a sixth more of what was read, at least 256 KiB) until it parses; never the weights.
    `counter`, when given, gets the bytes received added to its first item."""
    import requests

    from airpods.models.gguf_header import GGUFTruncated, parse_header

    url = f"{endpoint}/{repo}/resolve/{quote(revision, safe='')}/{quote(path)}"
    buf = bytearray()
    want = FIRST_READ
    size = None
    with requests.Session() as session:
        while True:
            headers = {**hub_http.headers(environ), "Range": f"bytes={len(buf)}-{len(buf) + want - 1}"}
            try:
                resp = session.get(url, headers=headers, timeout=60)
            except requests.RequestException as exc:
                raise RuntimeFailure(f"reading the header of {repo}/{path} failed: "
                                     f"{hub_http.describe(exc, environ)}") from exc
            if resp.status_code in (401, 403):
                raise _denied(repo, resp.status_code, environ)
            if resp.status_code not in (200, 206):
                raise RuntimeFailure(f"reading the header of {repo}/{path}: HTTP {resp.status_code}")
            if counter is not None:
                counter[0] += len(resp.content)
            whole = resp.status_code == 200  # the server ignored the range: this is the file
            buf = bytearray(resp.content) if whole else buf + resp.content
            size = len(buf) if whole else _total(resp) or size
            try:
                return parse_header(bytes(buf), size or len(buf))
            except GGUFTruncated:
                if whole or len(resp.content) < want or len(buf) >= MAX_HEADER:
                    raise
            want = max(MIN_READ, len(buf) // 6)


def _total(resp: Any) -> int | None:
    """The file's size from `Content-Range: bytes A-B/TOTAL`."""
    total = resp.headers.get("Content-Range", "").rpartition("/")[2]
    return int(total) if total.isdigit() else None


def best_projector(projectors: list[RepoFile], group: Group) -> RepoFile | None:
    """The vision projector for a model: one in the model's folder first, F16 before others."""
    if not projectors:
        return None
    folder = group.files[0].path.rpartition("/")[0]

    def rank(f: RepoFile) -> tuple[bool, bool, str]:
        return (f.path.rpartition("/")[0] != folder, "f16" not in f.path.lower(), f.path)

    return sorted(projectors, key=rank)[0]
