"""`airpods models …`: the GGUF files in the llama.cpp model volume."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from airpods.cli.application import Application, pass_app
from airpods.errors import UsageError

service_option = click.option("--service", "-s", metavar="NAME",
                              help="Use the model volume of this llama.cpp service (default: runtime.models_volume).")


def _store(app: Application, service: str | None):
    from airpods.models.store import ModelStore

    specs = app.specs(create_secrets=False)
    volume = app.runtime_settings["models_volume"]
    if service:
        app.select(specs, (service,))
        spec = specs[service]
        if spec.kind != "llamacpp":
            raise UsageError(f"service '{service}' is a {spec.kind} service, not llama.cpp")
        volume = next((v.source for v in spec.volumes if v.target == "/models"), volume)
    labels = {**app.runtime_settings["labels"], "io.airpods.managed": "true"}
    return ModelStore(app.runtime, volume, labels)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


@click.group()
def models() -> None:
    """Manage GGUF models in the llama.cpp model volume (mounted read-only at /models).

    \b
    Examples:
      airpods models import ~/Downloads/qwen2.5-0.5b-instruct-q4_k_m.gguf
      airpods models pull bartowski/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q4_K_M.gguf
      airpods models list
    Then set services.llamacpp.default_model to the file name.
    """


@models.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="File name in the volume (default: the file's own name).")
@click.option("--force", is_flag=True, help="Replace a model of the same name.")
@service_option
@pass_app
def import_cmd(app: Application, path: Path, name: str | None, force: bool, service: str | None) -> None:
    """Copy a local GGUF file into the model volume (checks it is GGUF, records its sha256)."""
    from airpods.models.store import check_name

    if not path.exists():
        raise UsageError(f"{path} does not exist")
    check_name(name or path.name)  # before touching Podman
    store = _store(app, service)
    with app.terminal.bytes_progress(f"importing {path.name}") as progress:
        entry = store.import_file(path, name, progress, force=force)
    app.terminal.success(f"imported {entry.file} into {store.volume} ({_size(entry.size)}, "
                         f"{entry.architecture or '?'} {entry.quantization or ''}, sha256 {entry.sha256[:12]}…)")


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@service_option
@pass_app
def list_cmd(app: Application, as_json: bool, service: str | None) -> None:
    """List the models in the volume: file, size, architecture, quantization."""
    store = _store(app, service)
    entries = store.list()
    if as_json:
        app.terminal.print_json([e.to_json() for e in entries])
        return
    if not entries:
        app.terminal.info(f"no models in {store.volume}; add one with `airpods models import PATH` "
                          "or `airpods models pull org/repo/file.gguf`")
        return
    app.terminal.table(["FILE", "SIZE", "ARCH", "QUANT", "SHA256"],
                       [[e.file, _size(e.size), e.architecture or "?", e.quantization or "?",
                         (e.sha256 or "-")[:12]] for e in entries])


@models.command("rm")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@service_option
@pass_app
def rm_cmd(app: Application, name: str, yes: bool, service: str | None) -> None:
    """Delete a model file from the volume (asks first unless --yes). NAME is a file name as
    `airpods models list` shows it, never a path."""
    from airpods.models.store import check_name

    check_name(name)  # before touching Podman
    store = _store(app, service)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to delete {name} without confirmation", hint="pass --yes")
        click.confirm(f"Delete {name} from {store.volume}?", abort=True, err=True)
    store.remove(name)
    app.terminal.success(f"deleted {name} from {store.volume}")


@models.command("pull")
@click.argument("ref")
@click.option("--revision", default="main", show_default=True, help="Branch, tag or commit on the hub.")
@click.option("--force", is_flag=True, help="Replace a model of the same name.")
@service_option
@pass_app
def pull_cmd(app: Application, ref: str, revision: str, force: bool, service: str | None) -> None:
    """Download REF (org/repo/file.gguf) from Hugging Face into the volume.

    Resumes an interrupted download, checks the sha256 the hub publishes. Honours HF_ENDPOINT
    (mirror) and HF_TOKEN (gated repos).
    """
    from airpods.models.hub import parse_ref, pull

    parse_ref(ref)  # usage errors before touching Podman
    store = _store(app, service)
    with app.terminal.bytes_progress(f"downloading {ref.rsplit('/', 1)[-1]}") as progress:
        name = pull(store, ref, revision=revision, environ=app.environ, progress=progress, force=force)
    app.terminal.success(f"downloaded {name} into {store.volume} (sha256 verified)")
