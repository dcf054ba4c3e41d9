"""Jinja2 templating of config values, sandboxed, with StrictUndefined.

Templated keys: command_args values, env values, entrypoint_override and args. A value may refer
to other values (`{{ service.env.BASE }}`, `{{ services.llamacpp.command_args.port }}`); they are
rendered on demand, and a reference cycle is an error naming the keys on the cycle."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from airpods.errors import ConfigError

SECTIONS = ("command_args", "env", "entrypoint_override", "args")


class _Reported(Exception):
    """An inner failure already recorded as a problem; outer keys just stop."""


class TemplateFailure(Exception):
    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class LazySection(Mapping):
    """A service's command_args or env as seen from a template: rendered on access."""

    def __init__(self, renderer: Renderer, service: str, section: str, raw: Mapping[str, Any]):
        self._renderer, self._service, self._section, self._raw = renderer, service, section, raw

    def __getitem__(self, key: str) -> Any:
        if key not in self._raw:
            raise KeyError(key)
        return self._renderer.resolve(self._service, self._section, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class Renderer:
    """Renders every templated value of every service once, collecting all problems."""

    def __init__(self, raw: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any],
                 per_service: Mapping[str, Mapping[str, Any]]):
        # raw: service -> {section -> value}; per_service: service -> extra context (service, gpu..)
        self.raw = raw
        self.context = context
        self.per_service = per_service
        self.env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined,
                                                 autoescape=False, keep_trailing_newline=True)
        self.done: dict[tuple[str, str, str | None], Any] = {}
        self.stack: list[tuple[str, str, str | None]] = []
        self.problems: dict[str, str] = {}
        self.cycles: set[frozenset] = set()

    @staticmethod
    def path(key: tuple[str, str, str | None]) -> str:
        service, section, name = key
        return f"services.{service}.{section}" + (f".{name}" if name is not None else "")

    def section(self, service: str, section: str) -> LazySection:
        return LazySection(self, service, section, self.raw[service].get(section) or {})

    def resolve(self, service: str, section: str, name: str | None) -> Any:
        key = (service, section, name)
        if key in self.done:
            return self.done[key]
        if key in self.stack:
            cycle = self.stack[self.stack.index(key):] + [key]
            members = frozenset(cycle)
            if members not in self.cycles:  # report each cycle once, at the key that closes it
                self.cycles.add(members)
                self.problems.setdefault(self.path(cycle[0]), "reference cycle: " + " -> ".join(
                    self.path(k) for k in cycle))
            raise _Reported
        raw = self.raw[service].get(section)
        value = raw[name] if name is not None else raw
        self.stack.append(key)
        try:
            rendered = self._render(value, service, key)
        except _Reported:
            raise
        except jinja2.TemplateSyntaxError as exc:
            self.problems[self.path(key)] = f"template syntax error: {exc.message} (line {exc.lineno} of the value)"
            raise _Reported from exc
        except jinja2.UndefinedError as exc:
            self.problems[self.path(key)] = str(exc.message)
            raise _Reported from exc
        except jinja2.exceptions.SecurityError as exc:
            self.problems[self.path(key)] = f"not allowed in a template: {exc}"
            raise _Reported from exc
        except (TypeError, ValueError, ArithmeticError, jinja2.TemplateError) as exc:
            self.problems[self.path(key)] = f"template error: {exc}"
            raise _Reported from exc
        finally:
            self.stack.pop()
        self.done[key] = rendered
        return rendered

    def _render(self, value: Any, service: str, key: tuple) -> Any:
        if isinstance(value, list):
            return [self._render(item, service, key) for item in value]
        if not is_template(value):
            return value
        ctx = {**self.context, **self.per_service[service]}
        return self.env.from_string(value).render(ctx)

    def render_all(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for service, sections in self.raw.items():
            out[service] = {}
            extra = [name for name in sections if name not in SECTIONS]  # e.g. models.<id>.command_args
            for section in [*SECTIONS, *extra]:
                raw = sections.get(section)
                if raw is None:
                    continue
                names = list(raw) if isinstance(raw, Mapping) else [None]
                values = {}
                for name in names:
                    try:
                        values[name] = self.resolve(service, section, name)
                    except _Reported:
                        continue
                out[service][section] = values if isinstance(raw, Mapping) else values.get(None)
        if self.problems:
            raise ConfigError("the configuration has template errors",
                              [f"{path}: {msg}" for path, msg in self.problems.items()],
                              hint="templates see: service, services.<name>, runtime, gpu, "
                                   "default_model, backends (see docs/configuration.md)")
        return out
