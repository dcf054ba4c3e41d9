"""`airpods hosts`: other airpods hosts behind this one's gateway, routed to by model (docs/hosts.md)."""

from __future__ import annotations

import sys

import click

from airpods.cli import contract
from airpods.cli.application import Application, pass_app
from airpods.errors import RuntimeFailure, UsageError


@click.group()
def hosts() -> None:
    """Other airpods hosts behind this one's gateway: one door, each request routed by its model.

    The hub (HAProxy, behind the gateway) sends a request for a model to this host's llama.cpp
    service that serves it or to every host whose /v1/models lists it, the least busy first, and
    takes a host out within seconds when it stops answering. Each host is trusted through its own
    CA (the file `airpods keys ca` writes there) and reached with a key it gave this host (made with
    `airpods keys add` there), kept here as a 0600 secret: never in the config, argv or a log.

    \b
    Examples:
      # on gpu-box: airpods keys add hub-laptop   (prints the key)  and  airpods keys ca -o box-ca.pem
      airpods hosts add gpu-box https://gpu-box.lan:8443 --ca box-ca.pem   # the key on stdin or a prompt
      airpods start                 # the hub and the gateway, routes from what each host serves
      airpods hosts list            # reachable?, latency, models, certificate expiry
      airpods hosts refresh         # read the hosts' model lists again
      airpods hosts rm gpu-box
    """


def _read_key(name: str) -> str:
    from airpods.config.values import is_token

    if sys.stdin.isatty():
        key = click.prompt(f"the key {name} gave this host (airpods keys add NAME printed it there)",
                           hide_input=True, err=True)
    else:
        key = sys.stdin.readline()
    key = key.strip()
    if not is_token(key):
        raise UsageError(f"no key for host '{name}' was given (or it is not one token)",
                         hint=f"on {name}: airpods keys add hub-<this host>, then pass it on stdin: "
                              f"airpods hosts add {name} URL --ca FILE < keyfile")
    return key


def _valid(name: str, url: str) -> str:
    from pydantic import ValidationError

    from airpods.config.schema import HOST_NAME, Host

    if not HOST_NAME.match(name):
        raise UsageError(f"host name {name!r} must be lower-case letters, digits or '-' (at most 31), starting "
                         "with a letter or digit")
    try:
        return Host(url=url).url
    except ValidationError as exc:
        raise UsageError(f"hosts.{name}.url: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def _check(name: str, url: str, ca_text: str, key: str):
    """The host, asked with this CA and key before anything is saved."""
    import tempfile

    from airpods.hosts.probe import look

    with tempfile.NamedTemporaryFile("w", suffix=".pem") as fh:
        fh.write(ca_text)
        fh.flush()
        reading = look(url, fh.name, key)
    if reading.refused:
        raise UsageError(f"host '{name}' ({url}) was refused: {reading.error}; nothing was saved",
                         hint="check that the CA file is the one `airpods keys ca` writes on that host "
                              "and the key is the one `airpods keys add` printed there")
    if not reading.reachable:
        raise RuntimeFailure(f"host '{name}' ({url}) did not answer: {reading.error}; nothing was saved",
                             hint="start its gateway (airpods start gateway there) and check that this host "
                                  "can reach that address, then run the same command again")
    return reading


@hosts.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--ca", "ca_file", required=True, metavar="FILE",
              help="The CA certificate of that host's gateway (airpods keys ca -o FILE there).")
@pass_app
def add(app: Application, name: str, url: str, ca_file: str) -> None:
    """Add host NAME at URL (its gateway, https://HOST:PORT), with the key it gave this one.

    The key is read from stdin, or asked for without echo on a terminal. Before anything is
    saved, the host is asked for its model list with that CA and key: a certificate the CA did not
    sign is refused during the TLS handshake, before the key is sent."""
    from airpods.config import edit
    from airpods.config.loader import user_config_path
    from airpods.hosts import trust
    from airpods.kinds import kind_of
    from airpods.stack.hub import hub_dir

    url = _valid(name, url)
    ca_text = trust.read_ca(ca_file)
    key = _read_key(name)
    config = app.stack.config
    reading = _check(name, url, ca_text, key)
    enable = [n for n, s in config.services.items()
              if (kind_of(s.kind).door or kind_of(s.kind).model_router) and not s.enabled]
    path, _origin = user_config_path(app.config_path)
    edit.writable(path)
    with edit.locked(path):
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        change = edit.add_host(path, text, name, url, enable)
        trust.store(hub_dir(app.stack), app.stack.secrets(), name, ca_text, key)
        edit.write(change)
    app.terminal.success(f"host '{name}' added ({url}): it serves {', '.join(reading.models) or 'no model yet'}")
    if enable:
        app.terminal.detail(f"enabled in {path}: {', '.join(enable)} (the hosts are reached through them)")
    app.terminal.detail("its CA and key are kept in airpods' data folder (the key 0600); "
                        "airpods start brings the hub up with it")


@hosts.command("rm")
@click.argument("name")
@pass_app
def rm(app: Application, name: str) -> None:
    """Remove host NAME: its table in the config, its CA and its key. The next start routes without it."""
    from airpods.config import edit
    from airpods.config.loader import user_config_path
    from airpods.hosts import trust
    from airpods.stack.hub import hub_dir

    path, _origin = user_config_path(app.config_path)
    edit.writable(path)
    with edit.locked(path):
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        change = edit.remove_host(path, text, name)
        forgot = trust.forget(hub_dir(app.stack), app.stack.secrets(create=False), name)
        if change is None and not forgot:
            known = ", ".join(app.stack.config.hosts) or "none"
            raise UsageError(f"no host '{name}' in {path} (hosts: {known})", hint="airpods hosts list")
        if change is not None:
            edit.write(change)
    app.terminal.success(f"host '{name}' removed; airpods start routes without it")


@hosts.command("list")
@click.option("--json", "as_json", is_flag=True, help=f"Print a JSON list ({contract.HOSTS_LIST.help()}).")
@pass_app
def list_hosts(app: Application, as_json: bool) -> None:
    """Each host: reachable or why not, the latency of GET /v1/models, its models, its TLS expiry."""
    from airpods.stack.hub import host_readings, host_row

    rows = [host_row(name, r) for name, r in host_readings(app.stack).items()]
    if as_json:
        app.terminal.print_json(rows, contract.HOSTS_LIST)
        return
    if not rows:
        app.terminal.info("no hosts yet: airpods hosts add NAME URL --ca FILE")
        return
    app.terminal.table(["HOST", "URL", "REACHABLE", "LATENCY", "MODELS", "TLS EXPIRES"],
                       [[r["name"], r["url"], "yes" if r["reachable"] else f"no: {r['error']}",
                         "" if r["latency_ms"] is None else f"{r['latency_ms']:.0f} ms",
                         ", ".join(r["models"]) or "-", r["tls_expires"] or "-"] for r in rows])


@hosts.command("refresh")
@pass_app
def refresh(app: Application) -> None:
    """Ask every member (this host's llama.cpp services, each host) what it serves now, and have the
    running hub route by that (requests in flight finish first)."""
    from airpods.stack.hub import refresh as refresh_routes

    done = refresh_routes(app.stack, app.stack.specs())
    if done is None:
        raise UsageError("this config has no enabled hub", hint="airpods hosts add NAME URL --ca FILE enables it")
    for model, members in sorted(done.routes.served.items()):
        app.terminal.detail(f"{model}: {', '.join(m.removeprefix('host-').removeprefix('local-') for m in members)}")
    if done.routes.skipped:
        app.terminal.warning(f"not routable (not one word): {', '.join(done.routes.skipped)}")
    app.terminal.success(done.summary() + ("" if done.reloaded else " (the hub is not running: airpods start)"))
