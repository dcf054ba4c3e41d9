"""A conversation: its messages (so a second question can refer to the first), its system prompt,
the model it asks, and the slash commands people type between questions. Pure: no terminal, no
network; the chat loop in the CLI reads lines, asks this what they mean, and sends `messages()`."""

from __future__ import annotations

from dataclasses import dataclass, field

HELP = ("/clear  forget the conversation      /model NAME  ask another model (router)\n"
        "/system TEXT  set the system prompt   /stats  speed of each answer on/off\n"
        "/bye  leave (or Ctrl-D)               Esc then Enter: a new line; Ctrl-C stops an answer")


@dataclass(frozen=True)
class Command:
    """What a typed line asks for: `ask` (send it as a question) or one of the slash commands."""

    kind: str  # ask | clear | model | system | stats | bye | help | unknown | empty
    arg: str = ""


@dataclass
class Conversation:
    system: str | None = None
    model: str | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    show_stats: bool = False

    def messages(self, question: str) -> list[dict[str, str]]:
        """What to send for a new question: the system prompt, the conversation so far, the question."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return [*head, *self.history, {"role": "user", "content": question}]

    def answered(self, question: str, answer: str) -> None:
        self.history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]

    def apply(self, command: Command) -> str | None:
        """Carry out a slash command; returns what to tell the person (None: nothing)."""
        if command.kind == "clear":
            self.history.clear()
            return "conversation cleared"
        if command.kind == "model":
            if not command.arg:
                return f"model: {self.model or 'the service default'} (/model NAME to change)"
            self.model = command.arg
            return f"asking {command.arg} from now on"
        if command.kind == "system":
            self.system = command.arg or None
            return f"system prompt {'set' if command.arg else 'removed'}"
        if command.kind == "stats":
            self.show_stats = not self.show_stats
            return f"speed after each answer: {'on' if self.show_stats else 'off'}"
        if command.kind == "help":
            return HELP
        if command.kind == "unknown":
            return f"unknown command {command.arg}; /help lists them"
        return None


def parse(line: str) -> Command:
    """A line as typed: a question, or a slash command (`/model qwen`, `/bye`, ...)."""
    text = line.strip()
    if not text:
        return Command("empty")
    if not text.startswith("/") or text.startswith("//"):
        return Command("ask", text[1:] if text.startswith("//") else text)  # "//" sends a line that starts with /
    word, _, rest = text.partition(" ")
    kinds = {"/clear": "clear", "/model": "model", "/system": "system", "/stats": "stats", "/bye": "bye",
             "/exit": "bye", "/quit": "bye", "/help": "help", "/?": "help"}
    if word in kinds:
        return Command(kinds[word], rest.strip())
    return Command("unknown", word)
