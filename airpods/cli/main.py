"""The `airpods` root command. Commands are imported only when used, so `airpods --help`
stays fast and works whatever state the config file is in."""

from __future__ import annotations

import importlib
import os
import sys

import click

from airpods import __version__
from airpods.errors import AirpodsError

COMMANDS = {
    "run": ("airpods.cli.commands.run:run", "Run a model by its name (org/repo:QUANT) and chat with it."),
    "chat": ("airpods.cli.commands.chat:chat", "Chat with a running llama.cpp service (or through the gateway)."),
    "start": ("airpods.cli.commands.start:start", "Start services and wait until they are healthy."),
    "stop": ("airpods.cli.commands.stop:stop", "Stop services (volumes are always kept)."),
    "status": ("airpods.cli.commands.status:status", "Show state, health, URL and model of services."),
    "top": ("airpods.cli.commands.top:top", "Live view: requests, tokens/s, KV cache, CPU, memory, VRAM per model."),
    "bench": ("airpods.cli.commands.bench:bench", "Measure a model's tokens/s here, kept in a history."),
    "logs": ("airpods.cli.commands.logs:logs", "Show or follow a service's logs."),
    "config": ("airpods.cli.commands.config_cmd:config", "Show, check, render and create configuration."),
    "models": ("airpods.cli.commands.models:models", "Manage GGUF models in the llama.cpp model volume."),
    "doctor": ("airpods.cli.commands.doctor:doctor", "Check Podman, rootless or rootful, GPUs and the CPU plan."),
    "clean": ("airpods.cli.commands.clean:clean", "Remove pods and containers; with --volumes, data too."),
    "export": ("airpods.cli.commands.export:export", "Export services as Kubernetes or podman-kube YAML."),
    "keys": ("airpods.cli.commands.keys:keys", "Keys per person for the HTTPS gateway, its CA, Prometheus' password."),
    "hosts": ("airpods.cli.commands.hosts:hosts", "Other airpods hosts behind this gateway, routed to by model."),
}
HIDDEN = {"watch": "airpods.cli.commands.watch:watch"}  # started by `start`, not by people


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS and name not in HIDDEN:
            return None
        module, attr = (HIDDEN[name] if name in HIDDEN else COMMANDS[name][0]).split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text without importing the command modules.
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])

    def resolve_command(self, ctx, args):  # type: ignore[override]
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS and name not in HIDDEN:
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise click.UsageError(f"No such command '{name}'.{hint}", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Example: airpods run bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M\n\n"
                    "Config: --config FILE, else $AIRPODS_CONFIG, else ~/.config/airpods/config.toml.")
@click.version_option(__version__, "-V", "--version", prog_name="airpods")
@click.option("--config", "config_path", metavar="FILE", envvar=None,
              help="Config file to use (default: $AIRPODS_CONFIG or ~/.config/airpods/config.toml).")
@click.option("--url", metavar="URL", help="Podman API URL, e.g. unix:///run/podman/podman.sock "
              "(default: $CONTAINER_HOST, else the standard socket).")
@click.option("--debug", is_flag=True,
              help="Show tracebacks for unexpected errors and each call to Podman (also: AIRPODS_DEBUG=1).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, url: str | None, debug: bool) -> None:
    """Run local AI services (llama.cpp, Ollama, Open WebUI) as Podman pods.

    airpods picks the image for your GPU (NVIDIA, AMD ROCm, Vulkan or CPU), starts each service
    in its own pod on a shared network, waits until it answers, and wires Open WebUI to every
    llama.cpp endpoint.
    """
    from airpods.cli.application import Application

    ctx.obj = Application(config_path=config_path, url=url, debug=debug or _debug_requested([]))


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("AIRPODS_DEBUG", "") not in ("", "0")


def without_keys(text: str) -> str:
    """An error's text with whatever follows "Bearer" (a key in a header value) cut out: an
    unexpected error may quote a request, and no message may carry a key."""
    import re

    return re.sub(r"(?i)(bearer\s+)[^\s'\"]+", r"\1<key>", text)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    try:
        rv = cli.main(args=args, prog_name="airpods", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AirpodsError as exc:
        from airpods.cli.terminal import Terminal

        Terminal().failure(exc)
        if debug:
            raise
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        click.echo(f"error: internal error: {type(exc).__name__}: {without_keys(str(exc))}\n"
                   "This is a bug in airpods; run again with --debug for the traceback.", err=True)
        sys.exit(70)
    sys.exit(rv if isinstance(rv, int) else 0)


def entry() -> None:
    """The installed `airpods` command (and `python -m airpods`): main(), then leave without
    tearing the interpreter down module by module (~35 ms after a start that used podman-py).
    Output is flushed and exit handlers run first; a thread still running gets Python's usual
    exit, which waits for it. main() stays an ordinary function for callers in-process."""
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if not (code is None or isinstance(code, int)):
        sys.exit(code)  # a message: Python prints it and exits 1
    leave(code or 0)


def leave(code: int) -> None:
    import atexit
    import contextlib
    import threading

    if threading.active_count() > 1 or sys.getprofile() or sys.gettrace():  # a profiler writes at exit
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # the reader went away (`| head`), or closed
            stream.flush()
    atexit._run_exitfuncs()  # logging's flush, temporary folders' finalizers
    os._exit(code)
