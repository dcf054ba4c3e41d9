"""The application object handed to every command: terminal now, config and runtime lazily."""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

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
    def loaded(self) -> Any:
        from airpods.config.loader import load_raw

        return load_raw(self.config_path)

    @cached_property
    def config(self) -> Any:
        from airpods.config.loader import validate

        return validate(self.loaded)

    @cached_property
    def probe_results(self) -> tuple:
        from airpods.plan.gpu import ProbeEnv, detect

        return detect(ProbeEnv.from_environ(self.environ))

    def gpu_override(self) -> str | None:
        from airpods.errors import UsageError
        from airpods.plan.gpu import VARIANTS

        value = self.environ.get("AIRPODS_GPU", "").strip().lower()
        if value and value not in VARIANTS:
            raise UsageError(f"AIRPODS_GPU={value!r} is not one of {', '.join(VARIANTS)}",
                             hint="unset it to detect the GPU, or set e.g. AIRPODS_GPU=cpu")
        return value or None

    def secrets(self, *, create: bool = True) -> Any:
        from airpods.paths import secrets_dir
        from airpods.secrets import SecretStore

        return SecretStore(secrets_dir(self.environ), create=create)

    def specs(self, *, force_cpu: bool = False, create_secrets: bool = True) -> dict[str, Any]:
        from airpods.plan.resolve import Overrides, resolve

        config = self.config
        needs_probe = not force_cpu and not config.gpu.force_cpu
        results = self.probe_results if needs_probe else ()
        ov = Overrides(env_variant=self.gpu_override(), force_cpu_flag=force_cpu)
        return resolve(config, results, ov, self.secrets(create=create_secrets))

    def select(self, specs: dict[str, Any], names: tuple[str, ...], *, enabled_only: bool = True) -> list[str]:
        """Service names from the command line, checked; none given = all enabled services."""
        from airpods.errors import UsageError

        if not names:
            return [n for n, s in self.config.services.items() if s.enabled or not enabled_only]
        unknown = [n for n in names if n not in specs]
        if unknown:
            import difflib

            hints = [f"'{u}'" + (f" (did you mean '{c[0]}'?)" if (c := difflib.get_close_matches(
                u, list(specs), n=1)) else "") for u in unknown]
            raise UsageError(f"unknown service {', '.join(hints)}",
                             hint=f"services in the config: {', '.join(specs)}")
        return list(dict.fromkeys(names))

    @cached_property
    def runtime(self) -> Any:
        from airpods.runtime.connect import connect

        return connect(url=self.url or self.config.runtime.socket, environ=self.environ)
