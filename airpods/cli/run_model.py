"""What `airpods run REF` runs: REF (`org/repo[:QUANT]`, `org/repo/FILE.gguf`, or a model in the
volume) made into a file in the service's model volume. A model already there is used without
asking the hub; one that is not is sized and checked against this machine (RAM, and VRAM through
the GPU plan) before any byte is downloaded, then pulled as `models pull` pulls it."""

from __future__ import annotations

from airpods.cli.application import Application
from airpods.cli.models_ui import size_text
from airpods.errors import UsageError
from airpods.stack.targets import in_volume, probe_spec, store_for


def ensure_model(app: Application, specs: dict, spec, ref: str, revision: str, *, force: bool) -> str:
    """The model's file name in `spec`'s volume, pulled first when it is not there."""
    from airpods.models.hub_repo import parse_repo_ref

    store = store_for(app.stack, spec)
    root = store.root(create=False)
    if ref.endswith(".gguf") and ref.count("/") >= 2:
        return _one_file(app, specs, spec, store, root, ref, revision, force=force)
    by_repo = parse_repo_ref(ref)
    if by_repo is None:
        return in_volume(store, root, ref)
    repo, tag = by_repo
    local = _pulled_before(root, repo, tag, revision)
    if local is not None:
        app.terminal.info(f"{ref}: {local} is in {store.volume} already")
        return local
    return _from_repo(app, specs, spec, store, repo, tag, revision, force=force)


def _pulled_before(root, repo: str, tag: str | None, revision: str) -> str | None:
    """A file this repo's pull left in the volume, by the manifest's source and the quant tag (so
    a second `run` works offline)."""
    from airpods.models.hub_repo import DEFAULT_QUANT, quant_of
    from airpods.models.split_names import split_parts
    from airpods.models.store import read_manifest

    if root is None:
        return None
    hits = []
    for name, entry in read_manifest(root).items():
        source = str(entry.get("source") or "")
        if f"/{repo}@{revision}/" not in source or name.lower().startswith("mmproj"):
            continue
        if split_parts(name)[0] != name or not all((root / p).is_file() for p in split_parts(name)):
            continue  # a later part, or a split model not all here
        hits.append((quant_of(name) or "", name))
    want = (tag or DEFAULT_QUANT).upper()
    named = [n for q, n in hits if q.upper() == want]
    if len(named) == 1:
        return named[0]
    return hits[0][1] if tag is None and len(hits) == 1 else None


def _one_file(app: Application, specs: dict, spec, store, root, ref: str, revision: str, *, force: bool) -> str:
    from airpods.cli.models_ui import report
    from airpods.models.hub import parse_ref, pull
    from airpods.models.hub_http import endpoint as hub_endpoint
    from airpods.models.hub_repo import Group, RepoFile, list_files

    repo, file_path, name = parse_ref(ref)
    if root is not None and (root / name).is_file():
        app.terminal.info(f"{name} is in {store.volume} already")
        return name
    endpoint = hub_endpoint(app.environ)
    listed = next((f for f in list_files(repo, revision, endpoint, app.environ) if f.path == file_path), None)
    if listed is None:
        raise UsageError(f"{repo} has no file {file_path} (revision {revision})",
                         hint=f"see what it has: airpods models pull {repo} --list")
    group = Group(quant=name, stem=name, files=[RepoFile(listed.path, listed.size, listed.sha256)])
    _check_fit(app, specs, spec, repo, revision, endpoint, group, [group], force=force)
    store.check_space(store.root(create=True), listed.size, ref)
    with app.terminal.bytes_progress(f"downloading {name}") as progress:
        got = pull(store, ref, revision=revision, environ=app.environ, progress=progress,
                   sha256=listed.sha256 or "")
    report(app, f"downloaded {name} into {store.volume}", [got])
    return name


def _from_repo(app: Application, specs: dict, spec, store, repo: str, tag: str | None, revision: str, *,
               force: bool) -> str:
    from airpods.cli.models_ui import pull_group, report
    from airpods.models.hub_http import endpoint as hub_endpoint
    from airpods.models.hub_repo import best_projector, check_complete, choose, groups, list_files

    endpoint = hub_endpoint(app.environ)
    found, projectors = groups(list_files(repo, revision, endpoint, app.environ))
    group = choose(found, tag, repo)
    check_complete(group, repo)
    _check_fit(app, specs, spec, repo, revision, endpoint, group, found, force=force)
    projector = best_projector(projectors, group)
    pulled = pull_group(app, store, repo, revision, group, projector)
    report(app, f"downloaded {group.name} ({group.quant}, {size_text(group.size)}) into {store.volume}", pulled)
    return group.name


def _check_fit(app: Application, specs: dict, spec, repo: str, revision: str, endpoint: str, group,
               found: list, *, force: bool) -> None:
    """Say the size and whether it fits, before any byte of weights is downloaded; a model that does
    not fit is refused (exit 2) with the numbers and the repo's quantizations that do."""
    from airpods.plan.memory import human
    from airpods.stack.fit import quant_rows

    probe = probe_spec(spec, group.name)
    [row] = quant_rows(app.stack, specs, probe, repo, revision, endpoint, [group])
    t = app.terminal
    if row["fits"] is None:
        t.warning(f"{repo}:{group.quant}: {size_text(group.size)}; its header could not be read, so whether it "
                  "fits is not known")
        return
    need = human(row["total"])
    room = "no memory budget applies" if row.get("available") is None else \
        f"{human(row['available'])} available ({row['limit']})"
    gpu = f", {row['gpu_layers']} layers on GPU {','.join(map(str, row['gpus']))}" if row.get("gpus") else ""
    if row["fits"]:
        t.info(f"{repo}:{group.quant}: {group.name}, {size_text(group.size)}; needs about {need}{gpu}, "
               f"{room}: fits")
        return
    message = f"{repo}:{group.quant} ({size_text(group.size)}) does not fit here: it needs about {need}{gpu}; {room}"
    if force:
        t.warning(message + "; pulling anyway (--force)")
        return
    others = [g for g in found if g is not group]
    rows = quant_rows(app.stack, specs, probe, repo, revision, endpoint, others) if others else []
    fitting = [r for r in rows if r["fits"]]
    details = [f"{r['quant']}: {size_text(r['size'])}, needs about {human(r['total'])}" for r in fitting]
    if row.get("max_ctx"):
        details.append(f"{group.quant} fits with a smaller context: ctx_size up to {row['max_ctx']}")
    hint = (f"try one that fits: airpods run {repo}:{fitting[0]['quant']}" if fitting else
            "none of its quantizations fits: pick a smaller model, or free memory (airpods stop SERVICE)")
    raise UsageError(message + "; nothing was downloaded",
                     details=(["quantizations of this repo that fit:", *details] if fitting else details), hint=hint)


