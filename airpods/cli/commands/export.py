"""`airpods export`: the same services, for another engine."""

from __future__ import annotations

from pathlib import Path

import click

from airpods.cli.application import Application, pass_app
from airpods.kinds import kind_of


@click.group()
def export() -> None:
    """Export services to run elsewhere (built from the same resolved specs as `start`)."""


@export.command("kube")
@click.argument("services", nargs=-1)
@click.option("--target", type=click.Choice(["kubernetes", "podman"]), default="kubernetes", show_default=True,
              help="kubernetes: Deployments, Services, claims, a Secret; podman: Pods for `podman kube play`.")
@click.option("--variant", type=click.Choice(["cpu", "cuda", "rocm", "vulkan"]),
              help="Images and GPU requests for this accelerator (default: what this machine has).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the YAML here (mode 0600 with --show-secrets) instead of stdout.")
@click.option("--show-secrets", is_flag=True, help="Put the real keys into the Secret (kubernetes target).")
@click.option("--models-job", is_flag=True,
              help="Add a Job per pulled model that downloads it into the model claim and checks its sha256.")
@pass_app
def kube(app: Application, services: tuple[str, ...], target: str, variant: str | None, output: Path | None,
         show_secrets: bool, models_job: bool) -> None:
    """Export SERVICES (default: every enabled one, with what they depend on) as Kubernetes YAML.

    \b
    Nothing is asked of Podman: the YAML comes from the config, the same resolved specs `start`
    uses. Keys are only ever in a Secret (placeholders unless --show-secrets); the podman target
    mounts airpods' own 0600 key files instead, because Podman 4.3 cannot read a Secret.

    \b
    Examples:
      airpods export kube > airpods.yaml && kubectl apply -f airpods.yaml
      airpods export kube llamacpp --variant cuda --models-job -o llamacpp.yaml
      airpods export kube llamacpp --target podman -o ~/llamacpp.yaml   # podman kube play ~/llamacpp.yaml
    """
    from airpods.export import kube as kube_writer
    from airpods.export import podman_kube
    from airpods.export.common import volume_facts
    from airpods.export.yaml_out import dump_all
    from airpods.plan.order import closure, dependencies

    specs = app.stack.specs(variant=variant, create_secrets=show_secrets or target == "podman")
    selected = app.stack.select(specs, services)
    names = closure(selected, dependencies(specs))
    chosen = [specs[n] for n in names]
    settings = app.stack.runtime_settings
    if target == "kubernetes":
        gateway_keys = None
        if show_secrets and any(kind_of(s.kind).door for s in chosen):
            from airpods.gateway.keys import KeyStore

            gateway_keys = KeyStore.of(next(s for s in chosen if kind_of(s.kind).door)).caddy_text()
        docs, notes = kube_writer.documents(chosen, volume_facts(chosen, app.environ),
                                            model_volume=settings["models_volume"], show_secrets=show_secrets,
                                            models_job=models_job, gateway_keys=gateway_keys,
                                            hub_files=_hub_files(app, chosen))
    else:
        docs, notes = podman_kube.documents(chosen, _podman_key_files(app, chosen), named=bool(services))
    text = dump_all(docs)
    if output is None:
        click.echo(text, nl=False)
    else:
        from pathlib import Path

        from airpods.secrets import write_atomic

        try:  # keys: 0600 whatever was there before; written whole or not at all
            write_atomic(Path(output), text, 0o600 if show_secrets else 0o644)
        except OSError as exc:
            from airpods.errors import UsageError

            raise UsageError(f"cannot write {output}: {exc.strerror or exc}",
                             hint="choose a file in a folder you can write to") from exc
        app.terminal.success(f"wrote {len(docs)} documents to {output}")
    for note in notes:
        app.terminal.warning(note)


def _hub_files(app: Application, chosen: list) -> dict[str, dict[str, str]]:
    """The hub's routes as its last refresh wrote them here, and each host's CA (public
    certificates), for the cluster's ConfigMap and Secret."""
    from airpods.hosts import trust
    from airpods.plan.hub import HOSTS_DIR, LISTING, MAP, ROUTES
    from airpods.stack.hub import hub_dir

    out: dict[str, dict[str, str]] = {}
    for spec in (s for s in chosen if kind_of(s.kind).model_router):
        folder, files = hub_dir(app.stack), {}
        for name in (ROUTES, MAP, LISTING):
            if (folder / "etc" / name).is_file():
                files[name] = (folder / "etc" / name).read_text(encoding="utf-8")
        for mid, _title, _relay in spec.hub_members:
            host = mid.removeprefix("host-")
            if mid.startswith("host-") and trust.ca_path(folder, host).is_file():
                files[f"{HOSTS_DIR}/{host}.pem"] = trust.ca_path(folder, host).read_text(encoding="utf-8")
        out[spec.name] = files
    return out


def _podman_key_files(app: Application, chosen: list) -> dict:
    """For `--target podman`: the 0600 key file each service's pod mounts (Podman 4.3 cannot read a
    Secret), and the files those pods mount from airpods' data dir (router presets, Prometheus')."""
    from airpods.orchestrate.host_files import write_config_files, write_preset
    from airpods.secrets import api_key_name

    store = app.stack.secrets()
    key_files = {s.name: str(p) if (p := store.path(api_key_name(s.name))).exists() else None for s in chosen}
    for s in chosen:  # a key written in the config: a private file of its own to mount
        key = s.env.get("LLAMA_API_KEY")
        if key and (key_files[s.name] is None or store.get(api_key_name(s.name)) != key):
            key_files[s.name] = str(store.put(f"{api_key_name(s.name)}.config", key))
    for s in chosen:
        if s.router is not None:
            write_preset(s)  # the pod mounts it from airpods' data dir, as start does
        write_config_files(s)  # Prometheus' scrape configuration, likewise
    return key_files


@export.command("quadlet")
@click.argument("services", nargs=-1)
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Write the unit files into DIR (default: print them, each under a header).")
@click.option("--rootless", is_flag=True, default=None,
              help="Units for a user's own systemd (~/.config/containers/systemd); default: as you run now.")
@click.option("--install", is_flag=True,
              help="Write them where systemd's Quadlet generator reads them, create the Podman secrets, and "
                   "print the systemctl commands to run.")
@click.option("--variant", type=click.Choice(["cpu", "cuda", "rocm", "vulkan"]),
              help="Images and devices for this accelerator (default: what this machine has).")
@pass_app
def quadlet(app: Application, services: tuple[str, ...], output: Path | None, rootless: bool | None,
            install: bool, variant: str | None) -> None:
    """Export SERVICES (default: every enabled one, with what they depend on) as Quadlet units,
    so that systemd starts the whole stack at boot (Podman 4.4+; `.pod` units need Podman 5).

    \b
    One .network, a .volume per named volume, and per service a .pod (ports, aliases) and a
    .container (image, devices from the GPU plan, argv, env, mounts, resources), ordered by
    depends_on (Open WebUI after its backends). Keys go into Podman's secret store and the units
    name them only (Secret=NAME,type=env,target=VAR): no key is ever in a unit file.
    --install refuses (exit 2) to replace files airpods did not write.

    \b
    Examples:
      airpods export quadlet                          # look at the units
      airpods export quadlet --install                # then: systemctl daemon-reload && systemctl start llamacpp
      airpods export quadlet -o ./units --rootless    # for a user's ~/.config/containers/systemd
    """
    import os

    from airpods.export.quadlet import documents, stem
    from airpods.export.quadlet_install import install_dir, install_units, write_units
    from airpods.plan.order import closure, dependencies

    specs = app.stack.specs(variant=variant, create_secrets=True)
    selected = app.stack.select(specs, services)
    chosen = [specs[n] for n in closure(selected, dependencies(specs))]
    rootless = (os.geteuid() != 0) if rootless is None else rootless
    files, secrets = documents(chosen, _seal(app))
    from airpods.orchestrate.host_files import write_config_files, write_preset

    for s in chosen:
        if s.router is not None:
            write_preset(s)  # the unit mounts it from airpods' data dir, as start does
        write_config_files(s)  # Prometheus' scrape configuration, likewise
        if kind_of(s.kind).door:  # its Caddyfile and key file, mounted from airpods' data dir likewise
            from airpods.gateway.keys import KeyStore

            KeyStore.of(s).write_config(s.gateway_config)
        if kind_of(s.kind).model_router:  # its routes as the last start or refresh wrote them
            from airpods.stack.hub import check_trust

            check_trust(app.stack, specs, [s.name])
    if install:
        target = output or install_dir(rootless, app.environ)
        write_units(files, target)
        for line in install_units(app.stack.runtime, secrets, [stem(s, s.name) for s in chosen], rootless):
            app.terminal.info(line)
        app.terminal.success(f"wrote {len(files)} units to {target}")
        return
    if output is not None:
        write_units(files, output)
        app.terminal.success(f"wrote {len(files)} units to {output}")
    else:
        for f in files:
            click.echo(f"# ---- {f.name} ----\n{f.text}")
    if secrets:
        app.terminal.info(f"{len(secrets)} Podman secret(s) are referenced ({', '.join(r.name for r in secrets)}); "
                          "`airpods export quadlet --install` creates them")


def _seal(app: Application):
    """The user's seal for exported units (runtime/owned.py), from its key file, else made through
    the runtime (which first takes over a pre-seal airpods' objects); None without either: the
    units' objects are then not airpods' own to the other commands (said)."""
    from airpods.errors import AirpodsError
    from airpods.runtime.owned import existing_seal

    seal = existing_seal(app.environ)
    if seal is not None:
        return seal
    try:
        return app.stack.runtime.seal
    except AirpodsError as exc:
        app.terminal.warning(f"the units carry no seal ({exc.message}): airpods status and stop will not take what "
                             "they create for airpods' own")
        return None
