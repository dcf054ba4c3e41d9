"""`airpods config …`: see exactly what will run before anything runs."""

from __future__ import annotations

from pathlib import Path

import click

from airpods.cli import contract
from airpods.cli.application import Application, pass_app
from airpods.errors import UsageError


@click.group()
def config() -> None:
    """Show, check, render and create configuration.

    \b
    Lookup: --config FILE > $AIRPODS_CONFIG > $XDG_CONFIG_HOME/airpods/config.toml.
    Your file is deep-merged over the built-in defaults (tables merge, lists replace).
    """


@config.command("path")
@pass_app
def path_cmd(app: Application) -> None:
    """Print the config files in effect, defaults first."""
    from airpods.config.loader import DEFAULTS, user_config_path

    path, origin = user_config_path(app.config_path)
    app.terminal.print(f"{DEFAULTS}  (built-in defaults)")
    state = "" if path.exists() else ", does not exist: `airpods config init` writes it"
    app.terminal.print(f"{path}  (user file, from {origin}{state})")


@config.command("show")
@pass_app
def show(app: Application) -> None:
    """Print the effective configuration (defaults merged with your file) as TOML."""
    import tomlkit

    app.stack.config  # noqa: B018 - validate first: show nothing that would not load
    app.terminal.print(tomlkit.dumps(app.stack.loaded.data).rstrip())


@config.command("validate")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@pass_app
def validate_cmd(app: Application, file: str | None) -> None:
    """Check the configuration (or FILE): schema, cross-references and templates.

    Exits 0 when valid, 2 listing every problem otherwise; warns (exit 0) about what would fail
    once a disabled service is enabled, such as a host port another service publishes. Creates
    nothing.
    """
    if file:
        app.config_path = file
        app.__dict__.pop("stack", None)  # the stack of that file
        if not Path(file).exists():
            raise UsageError(f"config file {file} does not exist")
    from airpods.config.crosscheck import warnings

    specs = app.stack.specs(create_secrets=False, use_cache=False)
    enabled = [n for n, s in specs.items() if s.enabled]
    app.terminal.success(f"configuration is valid: {len(specs)} services ({', '.join(enabled)} enabled)")
    for message in warnings(app.stack.config):
        app.terminal.warning(message)


@config.command("render")
@click.argument("service")
@click.option("--json", "as_json", is_flag=True, help=f"Print one JSON object ({contract.RENDER.help()}).")
@click.option("--show-secrets", is_flag=True, help="Show API keys and secrets instead of ********.")
@click.option("--cpu", is_flag=True, help="Render as `start --cpu` would (no GPU).")
@pass_app
def render(app: Application, service: str, as_json: bool, show_secrets: bool, cpu: bool) -> None:
    """Print the fully resolved spec a start of SERVICE would create.

    Image for the detected GPU variant, pod, aliases, ports, volumes, env, devices and the exact
    argv (one item per line), with every template rendered.
    """
    specs = app.stack.specs(force_cpu=cpu, create_secrets=show_secrets)
    app.stack.select(specs, (service,))
    spec = specs[service]
    data = spec.to_json(show_secrets=show_secrets)
    if as_json:
        app.terminal.print_json(data, contract.RENDER)
        return
    t = app.terminal
    t.print(f"service:    {spec.name} ({spec.kind})")
    t.print(f"image:      {spec.image}  [variant {spec.variant}: {spec.gpu_reason}]")
    t.print(f"pod:        {spec.pod}   container: {spec.container}   network: {spec.network}")
    t.print(f"aliases:    {', '.join(spec.aliases)}")
    for p in spec.ports:
        t.print(f"port:       {p.host_ip}:{p.host} -> {p.container}")
    for v in spec.volumes:
        t.print(f"volume:     {v.source} -> {v.target} ({v.mode})")
    for d in spec.devices:
        t.print(f"device:     {d}")
    for k, v in data["env"].items():
        t.print(f"env:        {k}={v}")
    if spec.entrypoint is not None:
        t.print(f"entrypoint: {list(spec.entrypoint)}")
    t.print("command:")
    for item in spec.command:
        t.print(f"  {item}")
    t.print(f"health:     {spec.health_url or 'none'} expecting {list(spec.health.expected_status)}"
            f" within {spec.health.timeout:g}s")
    h = spec.health
    if h.check:
        t.print(f"check:      every {h.interval:g}s, {h.retries} failures in a row -> Podman restarts it "
                f"(after {h.max_restarts} restarts in a row: left stopped); start period {h.start_period:g}s "
                "(the check's text: --json)")
    if spec.router is not None and (spec.router.auto or spec.resident_why):
        t.print(f"max_loaded: {spec.router.max_loaded or 4} ({spec.resident_why or 'auto'})")
        for model, why in spec.resident_left_out:
            t.print(f"left out:   {model}: {why}")
    if spec.url:
        t.print(f"url:        {spec.url}")
    for prefix, target in spec.gateway_routes:
        t.print(f"route:      {prefix} -> {target}")
    if spec.gateway_names:
        t.print(f"tls names:  {', '.join(spec.gateway_names)} (the Caddyfile: --json)")
    for warning in spec.gpu_warnings:
        t.warning(warning)


INIT_TEMPLATE = """\
# airpods user configuration. Merged over the built-in defaults: only write what you change.
# See the defaults with `airpods config show`, the result with `airpods config render SERVICE`.
"""


@config.command("init")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@pass_app
def init(app: Application, force: bool) -> None:
    """Write a commented starter config to the user config path."""
    import tomlkit

    from airpods.config.loader import user_config_path

    path, _ = user_config_path(app.config_path)
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; not overwriting it",
                         hint="use --force to replace it, or edit it directly")
    doc = tomlkit.parse(INIT_TEMPLATE)
    runtime = tomlkit.table()
    runtime.add(tomlkit.comment('network = "airpods"'))
    runtime.add(tomlkit.comment("stop_timeout = 10"))
    doc.add("runtime", runtime)
    gpu = tomlkit.table()
    gpu.add(tomlkit.comment("Set to true to never use a GPU (or: AIRPODS_GPU=cpu, start --cpu)."))
    gpu.add("force_cpu", False)
    doc.add("gpu", gpu)
    services = tomlkit.table(is_super_table=True)
    llama = tomlkit.table()
    llama.add(tomlkit.comment("The GGUF file in the model volume (airpods models list)."))
    llama.add("default_model", "SmolLM2-135M-Instruct.Q4_1.gguf")
    llama.add(tomlkit.comment("Publish on another host port: ports = [{ host = 8090, container = 8080 }]"))
    args = tomlkit.table()
    args.add(tomlkit.comment("Any llama-server flag: snake_case key -> --kebab-case flag."))
    args.add("ctx_size", 4096)
    llama.add("command_args", args)
    services.add("llamacpp", llama)
    webui = tomlkit.table()
    webui.add(tomlkit.comment("Set to false to run llama.cpp without Open WebUI."))
    webui.add("enabled", True)
    services.add("open-webui", webui)
    doc.add("services", services)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    app.config_path = str(path)
    app.__dict__.pop("stack", None)  # the stack of the file just written
    app.stack.config  # noqa: B018 - what we wrote must load
    app.terminal.success(f"wrote {path}")
