"""The application object handed to every command: the command line's options, the environment,
the terminal, and the stack (airpods/stack/) those options describe, made when first asked."""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

import click

from airpods.cli.terminal import Terminal


class Application:
    def __init__(self, *, config_path: str | None = None, url: str | None = None,
                 debug: bool = False, environ: dict[str, str] | None = None):
        self.config_path = config_path
        self.url = url
        self.debug = debug
        self.environ = dict(os.environ if environ is None else environ)
        self.terminal = Terminal()

    @cached_property
    def stack(self) -> Any:
        """The project's stack on this machine (airpods/stack/core.py)."""
        from airpods.stack import Stack

        return Stack(config_path=self.config_path, url=self.url, environ=self.environ,
                     trace=self.terminal.detail if self.debug else None)

    def overlaid(self, data: dict[str, Any]) -> Application:
        """This command with `data` over the config (`airpods run`'s model), in memory."""
        app = Application(config_path=self.config_path, url=self.url, debug=self.debug, environ=self.environ)
        app.terminal = self.terminal
        app.__dict__["stack"] = self.stack.overlaid(data)
        return app


pass_app = click.make_pass_decorator(Application)  # commands receive the one Application
