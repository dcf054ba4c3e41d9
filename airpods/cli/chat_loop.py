"""The chat people type into (`airpods chat`, `airpods run`): prompt_toolkit for line editing,
history and multi-line input; answers stream to stdout as they come. Piped or with a prompt on
the command line: the answer alone on stdout, nothing else."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from airpods.chat.client import ChatClient, Reply, StopAnswer
from airpods.chat.session import Conversation, parse
from airpods.cli.terminal import Terminal
from airpods.errors import AirpodsError


def wants_interactive(prompt: tuple[str, ...]) -> bool:
    return not prompt and sys.stdin.isatty() and sys.stdout.isatty()


def question_from(prompt: tuple[str, ...]) -> str:
    """The question of a one-shot chat: the PROMPT words, then what stdin holds when it is not a
    terminal (`airpods run M "summarize:" < notes.txt`)."""
    parts = [" ".join(prompt)] if prompt else []
    if not sys.stdin.isatty():
        try:
            piped = sys.stdin.read()
        except (OSError, ValueError):  # closed or unreadable: nothing was piped
            piped = ""
        if piped.strip():
            parts.append(piped)
    return "\n\n".join(p for p in parts if p.strip())


_closed: list[bool] = []  # stdout's reader went away during this command


def _write(piece: str) -> None:
    """A piece of the answer to stdout; on a terminal without the escapes a model may have written
    (a title, a clipboard write, a cleared screen): its text only."""
    from airpods.cli.terminal import is_tty, printable

    try:
        sys.stdout.write(printable(piece) if is_tty(sys.stdout) else piece)
        sys.stdout.flush()
    except BrokenPipeError:  # `airpods run M "..." | head -c 100`: the reader has gone
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        _closed.append(True)
        raise StopAnswer from None


def one_shot(client: ChatClient, conversation: Conversation, question: str, terminal: Terminal, *,
             verbose: bool) -> Reply:
    """Ask once; the answer streams to stdout. A Ctrl-C stops it (exit 130, as any interrupted command)."""
    if not question.strip():
        from airpods.errors import UsageError

        raise UsageError("nothing to ask: give a PROMPT, or pipe text into stdin",
                         hint='e.g. airpods chat "Say hi"   or   echo "Say hi" | airpods chat')
    reply = client.stream(conversation.messages(question), model=conversation.model, on_text=_write)
    if reply.stopped and _closed:
        return reply  # the pipe's reader took what it wanted: not an error
    if reply.text and not reply.text.endswith("\n"):
        _write("\n")
    if reply.stopped:
        raise KeyboardInterrupt
    _empty(reply, terminal)
    if verbose:
        terminal.info(reply.stats())
    return reply


def _empty(reply: Reply, terminal: Terminal) -> None:
    """An answer with no text is said so (on stderr), rather than looking like nothing happened."""
    if reply.text.strip():
        return
    why = f"it only reasoned ({len(reply.reasoning)} characters of reasoning_content)" if reply.reasoning \
        else f"it stopped at once (finish_reason {reply.finish_reason or 'none'})"
    terminal.warning(f"the model's answer is empty: {why}; ask again, or rephrase")


def history_file(environ: dict[str, str]) -> Path:
    """What people typed, for the up arrow across sessions: private (0600), in airpods' data folder."""
    import os

    from airpods.paths import data_dir

    path = data_dir(environ) / "chat-history"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    return path


def interactive(client: ChatClient, conversation: Conversation, terminal: Terminal, *, where: str,
                environ: dict[str, str]) -> None:
    """The chat loop: a question per prompt, answers streamed; Ctrl-C stops an answer and keeps the
    session; Ctrl-D or /bye leaves."""
    import signal

    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    # Ctrl-C is how a person stops an answer: even when a parent left SIGINT ignored (a program
    # started in the background of a script inherits that, and Python then raises nothing).
    signal.signal(signal.SIGINT, signal.default_int_handler)

    session: Any = PromptSession(history=FileHistory(str(history_file(environ))), key_bindings=_bindings())
    terminal.info(f"chatting with {where}; /help for commands, /bye or Ctrl-D to leave")
    while True:
        try:
            line = session.prompt(">>> ")
        except KeyboardInterrupt:  # Ctrl-C at the prompt: a fresh line, as in a shell
            continue
        except EOFError:
            break
        command = parse(line)
        if command.kind == "bye":
            break
        if command.kind == "empty":
            continue
        if command.kind != "ask":
            said = conversation.apply(command)
            if said:
                terminal.info(said)
            continue
        _ask(client, conversation, command.arg, terminal)


def _ask(client: ChatClient, conversation: Conversation, question: str, terminal: Terminal) -> None:
    try:
        reply = client.stream(conversation.messages(question), model=conversation.model, on_text=_write)
    except AirpodsError as exc:  # the session goes on: the server may be back for the next question
        terminal.failure(exc)
        return
    if reply.text and not reply.text.endswith("\n"):
        _write("\n")
    if reply.stopped:
        terminal.info("[stopped]")
    else:
        _empty(reply, terminal)
    conversation.answered(question, reply.text)
    if conversation.show_stats and not reply.stopped:
        terminal.info(reply.stats())


def _bindings() -> Any:
    """Enter sends; Esc then Enter (or Alt+Enter) starts a new line; a paste keeps its lines."""
    from prompt_toolkit.key_binding import KeyBindings

    bindings = KeyBindings()

    @bindings.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    return bindings
