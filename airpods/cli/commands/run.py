"""`airpods run`: from a model's name to a conversation in one command."""

from __future__ import annotations

import click

from airpods.cli.application import Application, pass_app
from airpods.errors import UsageError


@click.command()
@click.argument("ref")
@click.argument("prompt", nargs=-1)
@click.option("--service", "-s", metavar="NAME", help="The llama.cpp service to run it in (default: the enabled "
              "router, else llamacpp).")
@click.option("--revision", default="main", show_default=True, help="Branch, tag or commit on the hub.")
@click.option("--system", metavar="TEXT", help="A system prompt for the conversation.")
@click.option("--verbose", "-v", is_flag=True, help="After each answer: prompt and generation tokens/s.")
@click.option("--cpu", is_flag=True, help="Use the CPU image and no GPU, whatever is detected.")
@click.option("--force", is_flag=True, help="Pull and start even when the memory estimate says it does not fit "
              "(warns).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Health wait (default: the service's health.timeout).")
@click.option("--draft", metavar="REF", help="A draft model for speculative decoding (same forms as REF; the same "
              "vocabulary as REF), pulled with it and run beside it (draft_model).")
@pass_app
def run(app: Application, ref: str, prompt: tuple[str, ...], service: str | None, revision: str,
        system: str | None, verbose: bool, cpu: bool, force: bool, timeout: float | None,
        draft: str | None) -> None:
    """Run a model and chat with it: REF is ORG/REPO[:QUANT], ORG/REPO/FILE.gguf, or a model in the
    volume (airpods models list).

    \b
    A model that is not in the volume is sized and checked against this machine (RAM, and VRAM
    through the GPU plan) before anything is downloaded; one that does not fit is refused (exit 2)
    with the repo's quantizations that do. Then it is pulled (verified), and run: an enabled router
    service gets it as one more model, loaded now; otherwise the `llamacpp` service runs it
    (--service for another), with the same memory checks and health wait as `airpods start`.
    The config file is not changed: `airpods models use NAME` makes a model the service's own.

    \b
    With a terminal and no PROMPT: a chat (see airpods chat --help). With a PROMPT, or stdin not a
    terminal: the answer alone on stdout, progress on stderr. The service keeps running.

    \b
    Examples:
      airpods run bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M
      airpods run bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M "Say hi"
      airpods run SmolLM2-135M-Instruct.Q4_1.gguf "Summarize:" < notes.txt
    """
    from airpods.chat.client import ChatClient
    from airpods.chat.session import Conversation
    from airpods.cli.chat_loop import interactive, one_shot, question_from, wants_interactive
    from airpods.cli.run_model import ensure_model
    from airpods.stack.targets import default_llama, endpoint_of

    specs = app.stack.specs(force_cpu=cpu)
    spec = default_llama(app.stack, specs, service)
    question = None if wants_interactive(prompt) else question_from(prompt)  # read stdin before the long work
    model = ensure_model(app, specs, spec, ref, revision, force=force)
    drafted = ensure_model(app, specs, spec, draft, revision, force=force) if draft is not None else None
    if spec.router is not None:
        from airpods.orchestrate.lock import HostLock
        from airpods.paths import router_lock

        with HostLock(router_lock(app.environ, app.stack.project, spec.name), on_wait=lambda: app.terminal.info(
                f"waiting for another airpods run to finish adding its model to {spec.name}")):
            running, model_id = _on_router(app, spec, model, cpu=cpu, timeout=timeout, force=force, draft=drafted)
        bye = (f"{model_id} stays loaded in {running.name}: airpods models unload {model_id}; "
               f"airpods stop {running.name}")
    else:
        running, model_id = _on_single(app, spec, model, cpu=cpu, timeout=timeout, force=force, draft=drafted), None
        bye = f"{running.name} keeps running {model}: airpods stop {running.name}"
    role = _role_of(running, model_id)
    if role != "chat":  # an embedder or a reranker: no chat to open
        from airpods.plan.roles import ENDPOINTS

        what = {"embed": "embeddings", "rerank": "reranking"}[role]
        base = (running.url or "(no published port)/v1").removesuffix("/v1")
        body = '"input": [...]' if role == "embed" else '"query": "...", "documents": [...]'
        name = model_id or model.removesuffix(".gguf")
        app.terminal.info(f"{model} serves {what}, not chat: POST {base}{ENDPOINTS[role]} with "
                          f'{{"model": "{name}", {body}}} (its key: the service\'s LLAMA_API_KEY, or a person\'s '
                          "key through the gateway)")
        app.terminal.detail(bye)
        return
    client = ChatClient(endpoint_of(app.stack, running))
    conversation = Conversation(system=system, model=model_id)
    try:
        if question is None:
            interactive(client, conversation, app.terminal, where=f"{model} in {running.name}", environ=app.environ)
        else:
            one_shot(client, conversation, question, app.terminal, verbose=verbose)
    finally:
        app.terminal.detail(bye)


def _role_of(spec, model_id: str | None) -> str:
    """What the running model serves: its router section's role, or the single service's flags."""
    from airpods.plan import roles

    if spec.router is not None:
        return next((m.role for m in spec.router.models if m.id == model_id), "chat")
    return roles.role_of(roles.flags_of(spec.command))


def _on_single(app: Application, spec, model: str, *, cpu: bool, timeout: float | None, force: bool,
               draft: str | None = None):
    """The service, resolved with `model` as its default_model (and `draft` as its draft_model; in
    memory), started or recreated as `airpods start` would; unchanged when it runs them already."""
    same = spec.run.model_in_volume == model and draft in (None, spec.run.draft_in_volume)
    table = {"default_model": model, **({"draft_model": draft} if draft else {})}
    switched = app if same else app.overlaid({"services": {spec.name: table}})
    specs = switched.stack.specs(force_cpu=cpu)
    mine = specs[spec.name]
    if mine.run.model_in_volume != model:
        raise UsageError(f"services.{spec.name} does not take its model from default_model, so airpods run cannot "
                         f"switch it (it runs {mine.run.model_in_volume or 'a model outside /models'})",
                         hint=f"set command_args.model = \"/models/{{{{ default_model }}}}\" in "
                              f"[services.{spec.name}], or run it in another service: --service NAME")
    app.terminal.info(f"running {model} in {spec.name} ({mine.url or 'no published port'})")
    _start(switched, specs, spec.name, timeout, force)
    return mine


def _on_router(app: Application, spec, model: str, *, cpu: bool, timeout: float | None, force: bool,
               draft: str | None = None):
    """The router gets `model` as one more model (its preset section, in memory), loaded now: a
    running router reads its preset again and keeps the models it has; a stopped one starts."""
    from airpods.cli.models_ui import settle
    from airpods.health import router_api
    from airpods.orchestrate.host_files import write_preset
    from airpods.orchestrate.running import serving, serving_base
    from airpods.stack.targets import preset_on_disk, router_entry

    key = spec.env.get("LLAMA_API_KEY")
    base, _why = serving(app.stack.runtime, spec)  # a keyed request only to the router's own published port
    live = router_api.list_models(base, key) if base else None
    model_id, overlay = router_entry(spec, model, preset_on_disk(spec) if live is not None else {})
    if draft is not None and next((m.draft for m in spec.router.models if m.id == model_id), None) != draft:
        overlay = overlay or {"services": {spec.name: {"models": {}}}}  # its draft, in memory, like the model
        models = overlay["services"][spec.name]["models"]
        models[model_id] = {**models.get(model_id, {}), "draft_model": draft}
    switched = app.overlaid(overlay) if overlay else app
    specs = switched.stack.specs(force_cpu=cpu)
    mine = specs[spec.name]
    app.terminal.info(f"{model} goes to the router {spec.name} as model {model_id}, loaded now")
    if live is not None and (overlay or mine.router.all_models):  # all_models: a new file is listed on reload
        if overlay:
            write_preset(mine, in_place=True)
        router_api.reload(base, key)
        listed = {m.id for m in router_api.list_models(base, key) or []}
        if overlay and model_id not in listed:  # it reads another file than ours (an older mount): start it anew
            app.terminal.warning(f"{spec.name} did not see its new preset; recreating it")
            live = None
    if live is None:
        _start(switched, specs, spec.name, timeout, force)
        base = serving_base(app.stack.runtime, mine)
    states = {m.id: m.state for m in router_api.list_models(base, key) or []}
    if states.get(model_id) not in ("loaded", "loading"):
        _load_when_room(app, mine, base, key, model_id)
    settle(switched, mine, base, model_id, unload=False)
    return mine, model_id



def _load_when_room(app: Application, spec, base: str, key: str | None, model_id: str) -> None:
    """Ask the router to load the model; while its every slot is taken by models that are busy
    (another `run` loading one: "model limit reached, try again later"), ask again."""
    import time

    from airpods.errors import RuntimeFailure
    from airpods.health import router_api

    deadline, pause, said = time.monotonic() + spec.health.timeout, 0.25, False
    while True:
        try:
            router_api.load(base, key, model_id)
            return
        except RuntimeFailure as exc:
            if "limit reached" not in exc.message or time.monotonic() + pause > deadline:
                raise
            if not said:
                app.terminal.info(f"{spec.name} has as many models loaded as it may ({exc.message.split(': ')[-1]}); "
                                  "waiting for one to be idle")
                said = True
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


def _start(app: Application, specs: dict, name: str, timeout: float | None, force: bool) -> None:
    """Start the service as `airpods start NAME` would, with its stages on the terminal."""
    from airpods.cli.live import LiveReporter
    from airpods.stack.start import StartOptions

    with LiveReporter(app.terminal) as reporter:
        app.stack.start(specs, [name], StartOptions(timeout=timeout, force=force), reporter)
