"""`airpods models use`: make a model a service's own, in the user's config file, without opening it."""

from __future__ import annotations

import click

from airpods.cli.application import Application, pass_app
from airpods.errors import UsageError


@click.command("use")
@click.argument("model")
@click.option("--service", "-s", metavar="NAME", help="The llama.cpp service (default: the enabled router, else "
              "llamacpp).")
@click.option("--dry-run", is_flag=True, help="Show the change and what start would recreate; write nothing.")
@pass_app
def use_cmd(app: Application, model: str, service: str | None, dry_run: bool) -> None:
    """Set which model a service runs: MODEL is a file in its volume (airpods models list).

    \b
    Writes the user's config file with its comments, order and formatting kept: a single-model
    service gets `default_model = "MODEL"`, a router service gets a [services.NAME.models.ID]
    table for it. Prints the change as a diff, then what `airpods start` will recreate. Refuses
    (exit 2, nothing changed) a read-only file, or a model that a template or another key decides,
    and says what to edit instead.

    \b
    Examples:
      airpods models use Qwen2.5-0.5B-Instruct-Q4_K_M.gguf
      airpods models use SmolLM2-135M-Instruct.Q4_1.gguf --service router --dry-run
    """
    from airpods.config import edit
    from airpods.config.loader import user_config_path
    from airpods.stack.targets import default_llama, in_volume, store_for

    specs = app.stack.specs(create_secrets=False)  # the config as it is must be valid first
    spec = default_llama(app.stack, specs, service)
    store = store_for(app.stack, spec)
    model = in_volume(store, store.root(create=False), model)
    path, _origin = user_config_path(app.config_path)
    edit.writable(path)
    with edit.locked(path):  # another `models use` waits, then changes the file as this one left it
        _use(app, spec, model, path, dry_run)


def _use(app: Application, spec, model: str, path, dry_run: bool) -> None:
    from airpods.config import edit
    from airpods.stack.targets import router_entry

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if spec.router is not None:
        model_id, overlay = router_entry(spec, model, {})
        if overlay is None:
            app.terminal.success(f"{spec.name} has {model} already (model {model_id}); nothing to change")
            return
        change = edit.add_router_model(path, text, spec.name, model_id, model)
    else:
        if spec.run.model_in_volume == model:
            app.terminal.success(f"{spec.name} runs {model} already; nothing to change")
            return
        change = edit.use_model(path, text, spec.name, model)
    after = app.stack.overlaid(change.overlay).specs(create_secrets=False)[spec.name]  # validates the result
    if spec.router is None and after.run.model_in_volume != model:
        raise UsageError(f"setting default_model would not change what {spec.name} runs "
                         f"({after.run.model_in_volume}); nothing was changed",
                         hint=f"edit services.{spec.name}.command_args.model in {path} yourself")
    app.terminal.print(change.diff().rstrip("\n"))
    if dry_run:
        app.terminal.info("--dry-run: nothing was written")
    else:
        edit.write(change)
        app.terminal.success(f"wrote {path}")
    _what_start_does(app, after)


def _what_start_does(app: Application, after) -> None:
    from airpods.errors import AirpodsError

    try:
        mine = [r for r in app.stack.running() if r.service == after.name and r.state.running]
    except AirpodsError:
        mine = []
    if not mine:
        app.terminal.info(f"{after.name} is not running: airpods start {after.name} runs it")
    elif mine[0].config_hash != after.config_hash:
        app.terminal.info(f"airpods start {after.name} recreates {mine[0].container} with it (volumes are kept)")
    else:
        app.terminal.info(f"{after.name} runs it already; airpods start changes nothing")
