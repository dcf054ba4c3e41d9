"""What the models commands (and `run`) show and wait for the same way: the --service option, sizes
as people read them, a download's progress and verification, a router's model settling. What they
act on is found in the stack (stack/targets.py, stack/fit.py)."""

from __future__ import annotations

import click

from airpods.cli.application import Application

service_option = click.option("--service", "-s", metavar="NAME",
                              help="Use the model volume of this llama.cpp service (default: runtime.models_volume).")


def size_text(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def settle(app: Application, spec, base: str, model_id: str, unload: bool) -> None:
    """The router answers at once; wait until the model really is (un)loaded. `base`: the router's
    URL, checked by the caller (orchestrate/running.py serving)."""
    from airpods.errors import RuntimeFailure
    from airpods.health.router_api import list_models
    from airpods.health.wait import Done, Pending, WaitTimeout, wait_for

    def check():
        states = {m.id: m for m in list_models(base, spec.env.get("LLAMA_API_KEY")) or []}
        state = states[model_id].state if model_id in states else "unknown"
        if state == "failed":
            raise RuntimeFailure(f"{spec.name}: model {model_id} failed to load (exit code "
                                 f"{states[model_id].exit_code})", hint=f"see airpods logs {spec.name}")
        done = state not in ("loaded", "loading") if unload else state == "loaded"
        return Done(state) if done else Pending(state)

    try:
        with app.terminal.status(f"{'unloading' if unload else 'loading'} {model_id}"):
            wait_for(check, timeout=30 if unload else spec.health.timeout, cap=0.2)
    except WaitTimeout as exc:
        raise RuntimeFailure(f"{spec.name}: model {model_id} is still {exc.last.detail} after {exc.waited:.0f}s",
                             hint=f"see airpods logs {spec.name}") from exc




def pull_group(app: Application, store, repo: str, revision: str, group, projector, *, force: bool = False) -> list:
    """Download a repo's model (every part of a split one) and its projector into the store,
    skipping what is here with the hub's sha256; progress per file. Returns what was downloaded."""
    from airpods.models.hub import pull

    root = store.root(create=True)
    assert root is not None
    wanted = [*group.files, *([projector] if projector else [])]
    todo = [f for f in wanted if force or not store.has(root, f.path.rsplit("/", 1)[-1], f.sha256)]
    store.check_space(root, sum(f.size for f in todo), f"{repo}:{group.quant}")
    pulled = []
    for i, f in enumerate(wanted, start=1):
        part = f" (part {i}/{len(group.files)})" if len(group.files) > 1 and f is not projector else ""
        name = f.path.rsplit("/", 1)[-1]
        if f not in todo:
            app.terminal.info(f"{name}{part}: already here (sha256 matches the hub's)")
            continue
        with app.terminal.bytes_progress(f"downloading {name}{part}") as progress:
            pulled.append(pull(store, f"{repo}/{f.path}", revision=revision, environ=app.environ, progress=progress,
                               force=force, sha256=f.sha256 or ""))
    if projector is not None:
        store.set_projector(root, group.name, projector.path.rsplit("/", 1)[-1])
    return pulled


def report(app: Application, what: str, pulled: list) -> None:
    """Say "sha256 verified" only when every file downloaded now was checked against a published hash."""
    unchecked = [p.name for p in pulled if not p.verified]
    if not unchecked:
        app.terminal.success(f"{what} (sha256 verified)" if pulled else what)
        return
    app.terminal.success(what)
    app.terminal.warning(f"not verified: the hub published no sha256 for {', '.join(unchecked)}; "
                         "the bytes are kept as downloaded")
    app.terminal.detail("a mirror (HF_ENDPOINT) may omit it: compare `sha256sum` of the file with the model's page")
