"""`airpods chat`: talk to a running llama.cpp service, or through the HTTPS gateway."""

from __future__ import annotations

import click

from airpods.cli.application import Application, pass_app
from airpods.kinds import kind_of
from airpods.stack.targets import default_llama, endpoint_of, gateway_endpoint


@click.command()
@click.argument("words", nargs=-1, metavar="[SERVICE] [PROMPT]...")
@click.option("--model", "-m", metavar="NAME", help="The model to ask (a router's id or alias; default: its "
              "default_model).")
@click.option("--system", metavar="TEXT", help="A system prompt for the conversation.")
@click.option("--gateway", is_flag=True, help="Go through the HTTPS gateway with a person's key from $AIRPODS_KEY, "
              "verifying the gateway's CA.")
@click.option("--verbose", "-v", is_flag=True, help="After each answer: prompt and generation tokens/s, as "
              "llama-server measured them.")
@pass_app
def chat(app: Application, words: tuple[str, ...], model: str | None, system: str | None, gateway: bool,
         verbose: bool) -> None:
    """Chat with a running llama.cpp service: answers stream as they are generated.

    \b
    On a terminal with no PROMPT: a conversation (it remembers what was said), with line editing
    and history. Enter sends; Esc then Enter adds a line. Ctrl-C stops an answer (the server stops
    generating) and keeps the conversation; Ctrl-D or /bye leaves. /clear, /model NAME (router),
    /system TEXT, /stats (speed after each answer), /help.
    With a PROMPT, or with stdin not a terminal: one answer, alone on stdout (progress and errors
    go to stderr), so it pipes.

    \b
    The API key comes from where airpods keeps it; it is never printed or put on a command line.
    SERVICE defaults to the enabled router, else `llamacpp`.

    \b
    Examples:
      airpods chat
      airpods chat "Why is the sky blue?"
      git diff | airpods chat "Write a commit message for this diff:"
      airpods chat router --model qwen --system "Answer in French."
      AIRPODS_KEY=apk-... airpods chat --gateway "Hello"
    """
    from airpods.chat.client import ChatClient
    from airpods.chat.session import Conversation
    from airpods.cli.chat_loop import interactive, one_shot, question_from, wants_interactive

    specs = app.stack.specs(create_secrets=False)
    service, prompt = _split_words(specs, words)
    if gateway:
        endpoint, behind = gateway_endpoint(app.stack, service)
        spec = specs[behind]
    else:
        spec = default_llama(app.stack, specs, service)
        endpoint = endpoint_of(app.stack, spec)
    conversation = Conversation(system=system, model=model or default_model_of(spec))
    client = ChatClient(endpoint)
    if wants_interactive(prompt):
        where = f"{spec.name}" + (f" ({conversation.model})" if conversation.model else "") + f" at {endpoint.base}"
        interactive(client, conversation, app.terminal, where=where, environ=app.environ)
        return
    one_shot(client, conversation, question_from(prompt), app.terminal, verbose=verbose)


def _split_words(specs: dict, words: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """`[SERVICE] [PROMPT...]`: the first word is the service when it names a llama.cpp service."""
    if words and words[0] in specs and kind_of(specs[words[0]].kind).llama_server:
        return words[0], words[1:]
    return None, words


def default_model_of(spec) -> str | None:
    """What a router is asked for by default (its default_model, else its first model); a single
    model server needs no name."""
    if spec.router is None:
        return None
    ids = [m.id for m in spec.router.models]
    return spec.default_model if spec.default_model in spec.router.ids() else (ids[0] if ids else None)


