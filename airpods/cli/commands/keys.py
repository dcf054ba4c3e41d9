"""`airpods keys`: the gateway's person keys and its CA certificate."""

from __future__ import annotations

import click

from airpods.cli import contract
from airpods.cli.application import Application, pass_app
from airpods.errors import UsageError
from airpods.kinds import kind_of
from airpods.stack.targets import gateway_spec, read_ca


def store(spec):
    from airpods.gateway.keys import KeyStore

    return KeyStore.of(spec)


@click.group()
def keys() -> None:
    """Keys for the HTTPS gateway: one per person, revocable on its own.

    A client sends its key as `Authorization: Bearer KEY` (the `api_key` of the openai client);
    the gateway lets it through and sends llama.cpp its own backend key, so a person's key never
    reaches a model server. Keys are kept in a 0600 file in airpods' data folder, mounted
    read-only into the gateway; the access log (airpods logs gateway) names the owner, never
    the key.

    \b
    Examples:
      airpods keys add alice          # prints alice's key, once
      airpods keys list
      airpods keys revoke alice       # refused within seconds; nothing restarts
      airpods keys ca -o airpods-ca.pem
      airpods keys prometheus         # the password of Prometheus' port (user airpods)
    """


@keys.command("add")
@click.argument("name")
@pass_app
def add(app: Application, name: str) -> None:
    """Make a key for NAME and print it (only this once: airpods cannot show it again)."""
    spec = gateway_spec(app.stack)
    key = store(spec).add(name)
    click.echo(key)
    app.terminal.success(f"key for '{name}' added; give it to them now, it is not shown again")
    app.terminal.detail(f"use: OPENAI_BASE_URL={spec.url}/v1 OPENAI_API_KEY=<the key>; trust the gateway's CA: "
                        "airpods keys ca -o airpods-ca.pem")
    if not spec.enabled:
        app.terminal.warning(f"the gateway is disabled in the config: [services.{spec.name}] enabled = true, "
                             f"then airpods start {spec.name}")


@keys.command("revoke")
@click.argument("name")
@pass_app
def revoke(app: Application, name: str) -> None:
    """Revoke NAME's key. A running gateway refuses it within about two seconds; llama.cpp and the
    gateway keep running."""
    store(gateway_spec(app.stack)).revoke(name)
    app.terminal.success(f"key for '{name}' revoked; the gateway refuses it within about two seconds")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help=f"Print a JSON list ({contract.KEYS_LIST.help()}).")
@pass_app
def list_keys(app: Application, as_json: bool) -> None:
    """Names, creation time and last use of the keys (never the keys themselves)."""
    import time

    from airpods.errors import AirpodsError
    from airpods.gateway.access import last_use

    spec = gateway_spec(app.stack)
    keystore = store(spec)
    try:  # last use, from the running gateway's access log
        mine = [r for r in app.stack.running() if r.service == spec.name]
        if mine:
            keystore.note_use(last_use(list(app.stack.runtime.logs(mine[0].container))))
    except AirpodsError as exc:
        app.terminal.warning(f"last use not updated: {exc.message}")
    found = keystore.keys()

    def when(t: float | None) -> str | None:
        return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    if as_json:
        app.terminal.print_json([{"name": k.name, "created": when(k.created), "last_used": when(k.last_used)}
                                 for k in found], contract.KEYS_LIST)
        return
    if not found:
        app.terminal.info("no keys yet: airpods keys add NAME")
        return
    app.terminal.table(["NAME", "CREATED", "LAST USED"],
                       [[k.name, when(k.created), when(k.last_used) or "never"] for k in found])


@keys.command("prometheus")
@click.argument("service", required=False)
@pass_app
def prometheus(app: Application, service: str | None) -> None:
    """The password of Prometheus' port (user "airpods"), on stdout: its HTTP API and web UI ask for
    it, so that other users of this machine cannot read the llama.cpp metrics it scrapes with their
    keys. Made once (0600, in airpods' data folder) when Prometheus is first started.

    \b
    Examples:
      curl -u "airpods:$(airpods keys prometheus)" http://127.0.0.1:9090/api/v1/query?query=up
      # Grafana: a Prometheus data source with basic auth, user airpods and this password
    """
    from airpods.errors import UsageError
    from airpods.secrets import web_password_name

    specs = app.stack.specs(create_secrets=False)
    ours = [n for n, s in specs.items() if kind_of(s.kind).scraper and (service is None or n == service)]
    if not ours:
        raise UsageError(f"no Prometheus service {service!r} in the config" if service else
                         "this config has no Prometheus service",
                         hint="enable it: [services.prometheus] enabled = true (docs/monitoring.md)")
    password = app.stack.secrets(create=False).read(web_password_name(ours[0]))
    if password is None:
        raise UsageError(f"{ours[0]} has no password yet: it is made when it first starts",
                         hint=f"airpods start {ours[0]}")
    click.echo(password)


@keys.command("ca")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the certificate to this file (default: print it).")
@pass_app
def ca(app: Application, output: str | None) -> None:
    """The root certificate of the gateway's local CA, for clients to trust (PEM).

    \b
    Examples:
      airpods keys ca -o airpods-ca.pem
      curl --cacert airpods-ca.pem -H "Authorization: Bearer $KEY" https://127.0.0.1:8443/v1/models
      SSL_CERT_FILE=airpods-ca.pem python my_openai_script.py
    """
    from pathlib import Path

    from airpods.gateway.ca import fingerprint
    from airpods.secrets import write_atomic

    spec = gateway_spec(app.stack)
    pem = read_ca(app.stack, spec)
    if output is None:
        click.echo(pem, nl=False)
    else:
        try:
            write_atomic(Path(output), pem, 0o644)  # a certificate is public
        except OSError as exc:
            raise UsageError(f"cannot write the certificate to {output}: {exc.strerror or type(exc).__name__}",
                             hint="name a file in a folder that exists and you can write, e.g. -o ./airpods-ca.pem"
                             ) from exc
        app.terminal.success(f"wrote {output}")
    app.terminal.detail(f"SHA-256 fingerprint: {fingerprint(pem)}")


@keys.command("usage")
@click.argument("name", required=False)
@click.option("--since", default="24h", show_default=True, metavar="AGE",
              help="How far back: 90m, 24h, 7d, or all.")
@click.option("--json", "as_json", is_flag=True,
              help=f"A JSON list ({contract.KEYS_USAGE.help()}).")
@pass_app
def usage(app: Application, name: str | None, since: str, as_json: bool) -> None:
    """Use per person and model: requests, errors, time, prompt and completion tokens.

    \b
    Requests and time come from the gateway's access log (it names each key's owner); tokens from
    llama-server's log of the request it served at that moment on the service it was routed to
    (nothing sits in the traffic to count them). What was read is kept in a ledger in the
    gateway's folder, so history outlives the containers and a revoked person's stays.
    Two people's requests to one service at the same moment can swap their token counts;
    UNMATCHED counts successful requests no llama-server task was found for.
    """
    import time

    from airpods.gateway.usage import summary

    cutoff = None if since == "all" else time.time() - _age(since)
    rows = summary(record_usage(app), cutoff, name)
    if as_json:
        app.terminal.print_json(rows, contract.KEYS_USAGE)
        return
    if not rows:
        app.terminal.info(f"no requests through the gateway{' by ' + name if name else ''} in the last {since}")
        return
    app.terminal.table(["PERSON", "MODEL", "REQUESTS", "ERRORS", "TIME", "PROMPT TOK", "COMPLETION TOK", "UNMATCHED"],
                       [[r["person"], r["model"], r["requests"], r["errors"], f"{r['seconds']:.1f}s",
                         r["prompt_tokens"], r["completion_tokens"], r["unmatched"]] for r in rows])


def _age(text: str) -> float:
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if m is None:
        raise UsageError(f"--since {text!r} is not an age", hint="e.g. --since 90m, 24h, 7d, or all")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def record_usage(app: Application) -> list:
    """Read the gateway's and its backends' logs, pair requests with tasks, add what is new to the
    ledger; returns every recorded request."""
    from pathlib import Path

    from airpods.errors import AirpodsError
    from airpods.gateway.usage import Ledger, pair, requests, tasks

    specs = app.stack.specs(create_secrets=False)
    spec = gateway_spec(app.stack, specs)
    ledger = Ledger(Path(spec.gateway_dir) / "usage.jsonl")
    running = {r.service: r for r in app.stack.running() if not r.state.infra}
    gw = running.get(spec.name)
    if gw is None:
        return ledger.read()
    routes = dict(spec.gateway_routes)
    try:
        hubs = frozenset(n for n, s in specs.items() if kind_of(s.kind).model_router)
        uses = requests(list(app.stack.runtime.logs(gw.container)), routes, hubs)
    except AirpodsError:
        return ledger.read()
    for service in {s for p, s in routes.items() if p != "/"}:
        backend = running.get(service)
        if backend is None or service in hubs:  # the hub logs no tasks: its answers named their model
            continue
        try:
            lines = list(app.stack.runtime.logs(backend.container, timestamps=True))
        except AirpodsError:
            continue
        single = service in specs and specs[service].router is None
        state = app.stack.runtime.inspect(backend.container)  # its start to the nanosecond (a listing rounds it)
        found = tasks(lines, backend.model if single else None, state.started_at if state else None)
        for use in (u for u in uses if u.service == service):
            use.model = backend.model if single else None
        pair([u for u in uses if u.service == service], found)
    return ledger.add(uses)
