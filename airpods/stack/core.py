"""The stack: one project's services on this machine, as a config describes them and Podman runs
them. It holds what every command asks of it (the config, its resolved specs and their cache, the
machine's probes and the views made from them, the runtime port) and what a command does to the
services (stack/start.py and its neighbours). Commands parse their options, call the stack and
render what it returns; the stack never prints (messages go through the reporter it is given).

Probes are asked once per stack (cached properties); `overlaid()` keeps them for a stack that sees
another model over the same config."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cached_property
from typing import Any

from airpods.kinds import kind_of

# What a stack asks of the machine (each once); an overlaid stack keeps the answers.
PROBES = ("runtime", "probe_results", "gpu_inventory", "cpu_topology", "memory_info")


class Stack:
    def __init__(self, *, config_path: str | None = None, url: str | None = None,
                 environ: dict[str, str] | None = None, overlay: dict[str, Any] | None = None,
                 trace: Callable[[str], None] | None = None):
        self.config_path = config_path
        self.overlay = overlay  # what `airpods run` asks for over the config, for this command only
        self.url = url
        self.environ = dict(os.environ if environ is None else environ)
        self.trace = trace  # --debug: where each runtime call is said
        self.runtime_settings: dict[str, Any] = {}  # config.runtime, filled in by specs()

    def start(self, specs: dict[str, Any], selected: list[str], opts: Any, reporter: Any) -> list[Any]:
        """Start `selected` as stack/start.py says (opts: a StartOptions); returns their Outcomes."""
        from airpods.stack.start import start

        return start(self, specs, selected, opts, reporter)

    def reload(self) -> None:
        """Read the config file again (one this command wrote)."""
        self.__dict__.pop("loaded", None)
        self.__dict__.pop("config", None)

    @cached_property
    def loaded(self) -> Any:
        from airpods.config.loader import load_raw, overlay

        loaded = load_raw(self.config_path)
        return overlay(loaded, self.overlay) if self.overlay else loaded

    def overlaid(self, data: dict[str, Any]) -> Stack:
        """The same stack with `data` over the config (e.g. another model for a service), in memory:
        the config file is not written. What was asked of the machine already is kept (PROBES)."""
        stack = Stack(config_path=self.config_path, url=self.url, environ=self.environ, overlay=data,
                      trace=self.trace)
        for probe in PROBES:
            if probe in self.__dict__:  # asked already: the machine did not change
                stack.__dict__[probe] = self.__dict__[probe]
        return stack

    @cached_property
    def config(self) -> Any:
        from airpods.config.loader import validate

        return validate(self.loaded)

    @cached_property
    def project(self) -> str:
        """This config's scope: runtime.project, else derived from the config file's name. Read
        from the raw file, so that stop and clean still know it when the config is invalid."""
        from airpods.config.loader import default_config_path, user_config_path
        from airpods.config.project import derive
        from airpods.errors import ConfigError

        try:
            runtime = self.loaded.data.get("runtime")
        except ConfigError:
            runtime = None
        explicit = runtime.get("project") if isinstance(runtime, dict) else None
        return derive(user_config_path(self.config_path)[0], default_config_path(),
                      explicit if isinstance(explicit, str) and explicit else None)

    @cached_property
    def probe_results(self) -> tuple:
        from airpods.probes.gpu import ProbeEnv, detect

        return detect(ProbeEnv.from_environ(self.environ))

    @cached_property
    def gpu_inventory(self) -> tuple:
        """Every GPU (probes/gpu.py); () on a machine without one, or with the GPU forced off."""
        from airpods.probes.gpu import ProbeEnv, inventory

        return inventory(ProbeEnv.from_environ(self.environ))

    def _gpu_plan_on(self, force_cpu: bool) -> bool:
        raw = self.loaded.data.get("runtime") or {}
        return (not force_cpu and not self.config_forces_cpu and raw.get("gpu_plan", "auto") != "off"
                and bool(self.gpu_inventory))

    def model_costs(self, specs: dict[str, Any]) -> dict[str, Any]:
        """What each planned llama.cpp service's model costs at its run shape, from its GGUF header
        in the model volume (None where it cannot be read: no Podman, no file, a broken header)."""
        from pathlib import Path

        from airpods.errors import AirpodsError
        from airpods.models.gguf import GGUFError
        from airpods.models.gguf_header import read_model
        from airpods.orchestrate.memory_check import model_facts
        from airpods.plan.gpu_apply import plannable
        from airpods.plan.gpu_plan import cost_of
        from airpods.plan.memory import OVERHEAD, estimate, facts_from_header

        out: dict[str, Any] = {}
        for name, spec in specs.items():
            if not plannable(spec) or spec.router is not None or not spec.run.model_in_volume:
                continue
            volume = next((v.source for v in spec.volumes if v.target == "/models"), None)
            try:
                root = self.runtime.volume_path(volume) if volume and self.runtime.volume_exists(volume) else None
                header = read_model(Path(root) / spec.run.model_in_volume) if root else None
            except (AirpodsError, GGUFError, OSError):
                header = None
            if header is not None:
                facts = facts_from_header(header.kv, header.tensor_bytes)
                out[name] = cost_of(facts, spec.run.shape, [(t.name, t.nbytes or 0) for t in header.tensors])
                draft = spec.run.draft_in_volume
                dfacts = model_facts(Path(root), draft, self.facts_cache) if root and draft else None
                if dfacts is not None and not spec.run.draft_on_cpu:  # where the target goes (-devd's default)
                    out[name] = out[name].with_draft(estimate(dfacts, spec.run.draft_shape).total - OVERHEAD)
        return out

    @cached_property
    def cpu_topology(self) -> Any:
        from airpods.errors import UsageError
        from airpods.probes.cpu import CpuProbeEnv, probe_cpu

        try:
            return probe_cpu(CpuProbeEnv.from_environ(self.environ))
        except ValueError as exc:
            raise UsageError(f"AIRPODS_CPU_AFFINITY: {exc}", hint="write CPUs like 0-3 or 0,2,4-7") from exc

    @cached_property
    def facts_cache(self) -> Any:
        """Models' header facts kept between commands (airpods/models/facts_cache.py)."""
        from airpods.models.facts_cache import FactsCache, facts_cache_path

        return FactsCache(facts_cache_path(self.environ))

    @cached_property
    def memory_info(self) -> Any:
        from airpods.probes.memory import probe_memory

        return probe_memory()

    def gpu_override(self) -> str | None:
        from airpods.errors import UsageError
        from airpods.plan.gpu import VARIANTS

        value = self.environ.get("AIRPODS_GPU", "").strip().lower()
        if value and value not in VARIANTS:
            raise UsageError(f"AIRPODS_GPU={value!r} is not one of {', '.join(VARIANTS)}",
                             hint="unset it to detect the GPU, or set e.g. AIRPODS_GPU=cpu")
        return value or None

    @property
    def config_forces_cpu(self) -> bool:
        """gpu.force_cpu from the raw config (validation happens where it is needed)."""
        raw = self.loaded.data.get("gpu")
        return isinstance(raw, dict) and raw.get("force_cpu") is True

    def secrets(self, *, create: bool = True) -> Any:
        from airpods.paths import secrets_dir
        from airpods.secrets import SecretStore

        return SecretStore(secrets_dir(self.environ), create=create)

    def specs(self, *, force_cpu: bool = False, create_secrets: bool = True,
              use_cache: bool = True, variant: str | None = None) -> dict[str, Any]:
        """Resolved ServiceSpecs; from the spec cache when nothing they depend on changed."""
        import json

        from airpods.paths import secrets_dir
        from airpods.plan import cache
        from airpods.plan.spec import from_record, to_record
        from airpods.secrets import PLACEHOLDER

        results = () if force_cpu or self.config_forces_cpu else self.probe_results
        override = variant or self.gpu_override()  # export --variant: another machine's accelerator
        texts = [s.text for s in self.loaded.sources] + [self.project]
        path, secrets = cache.cache_path(self.environ), secrets_dir(self.environ)
        probes = (*results, self.cpu_topology)
        gpu_plan = self._gpu_plan_on(force_cpu or variant == "cpu")
        if use_cache and not gpu_plan:  # a GPU plan depends on the models' headers: not cached
            hit = cache.load(path, cache.key(texts, override, force_cpu, probes, secrets))
            cached = _from_cache(hit, from_record)
            if cached is not None:
                self.runtime_settings = cached[1]
                return self._machine_views(cached[0], gpu_plan)
        from airpods.plan.resolve import Overrides, resolve

        config = self.config
        from airpods.paths import gateway_dir, hub_dir, prometheus_dir, router_dir

        specs = resolve(config, results, Overrides(env_variant=override, force_cpu_flag=force_cpu),
                        self.secrets(create=create_secrets), cpu=self.cpu_topology,
                        router_dir=str(router_dir(self.environ, self.project)), project=self.project,
                        gateway_dir=str(gateway_dir(self.environ, self.project)),
                        prometheus_dir=str(prometheus_dir(self.environ, self.project)),
                        hub_dir=str(hub_dir(self.environ, self.project)))
        self.runtime_settings = config.runtime.model_dump()
        payload = {"specs": {n: to_record(s) for n, s in specs.items()}, "runtime": self.runtime_settings}
        from pathlib import Path

        keys_made = all(Path(s.health_key_file).exists() for s in specs.values() if s.health_key_file)
        if not gpu_plan and keys_made and PLACEHOLDER not in json.dumps(payload):  # only fully resolved specs
            cache.save(path, cache.key(texts, override, force_cpu, probes, secrets), payload)
        return self._machine_views(specs, gpu_plan)

    def _machine_views(self, specs: dict[str, Any], gpu_plan: bool) -> dict[str, Any]:
        """What the model volumes on this disk add to the specs (vision projectors, never asking
        Podman, so `config render` works without it), then the GPU plan. Not cached: they follow the
        volumes' files, not the config."""
        from airpods.models.store import projectors
        from airpods.paths import podman_volume_dir
        from airpods.plan.vision import with_projectors

        volumes = {v.source for s in specs.values() if kind_of(s.kind).llama_server
                   for v in s.volumes if v.target == "/models"}
        found = {v: p for v in sorted(volumes) if (p := projectors(podman_volume_dir(v, self.environ)))}
        if found:
            specs = with_projectors(specs, found)
        specs = self._resident_sets(specs)
        return self._plan_gpus(specs) if gpu_plan else specs

    def _resident_sets(self, specs: dict[str, Any]) -> dict[str, Any]:
        """Routers with max_loaded = "auto": how many models stay loaded at once, from each model's
        header in the volume (on disk, never asking Podman) and this machine's memory budget."""
        from pathlib import Path

        from airpods.orchestrate.memory_check import budget, model_facts
        from airpods.paths import podman_volume_dir
        from airpods.plan.memory import parse_size
        from airpods.plan.resident import with_max_loaded

        autos = [n for n, s in specs.items() if s.router is not None and s.router.auto]
        if not autos:
            return specs
        out = dict(specs)
        setting = str((self.loaded.data.get("runtime") or {}).get("memory_budget", "auto"))
        for name in autos:
            spec = specs[name]
            volume = next((v.source for v in spec.volumes if v.target == "/models"), "")
            root = Path(podman_volume_dir(volume, self.environ)) if volume else None
            files = {f for m in spec.router.models for f in (m.file, m.draft) if f}  # a model and its draft
            facts = {file: f for file in files
                     if root is not None and (f := model_facts(root, file, self.facts_cache)) is not None}
            if spec.memory:
                ram, why = parse_size(spec.memory), f"services.{name}.resources.memory = \"{spec.memory}\""
            else:
                ram, why = budget(setting, self.memory_info.total, self.memory_info.source)
            vram = sum(g.free for g in self.gpu_inventory) if spec.variant != "cpu" and self.gpu_inventory else None
            if vram is not None and spec.gpu_cap:
                vram = min(vram, spec.gpu_cap)
            out[name] = with_max_loaded(spec, facts, ram, why, vram)
        return out

    def _plan_gpus(self, specs: dict[str, Any]) -> dict[str, Any]:
        from airpods.errors import ConfigError
        from airpods.plan.gpu_apply import apply
        from airpods.plan.gpu_plan import GpuPlanError

        try:
            return apply(specs, self.gpu_inventory, self.model_costs(specs), self.gpu_held(specs))
        except GpuPlanError as exc:
            raise ConfigError("the configuration is invalid", [str(exc)],
                              hint="use an index or UUID that nvidia-smi -L (or rocm-smi) lists, or drop the pin") \
                from exc

    def gpu_held(self, specs: dict[str, Any]) -> dict[int, int]:
        """VRAM per GPU that this config's running llama.cpp services hold (their labels): the GPU
        plan counts it as airpods' own, not as others'. Without Podman: none known (plan on free)."""
        from airpods.orchestrate.running import held_vram

        return held_vram(self._running_for_gpus, set(specs))

    @cached_property
    def _running_for_gpus(self) -> list[Any]:
        """This project's containers, asked once per command; none when Podman cannot be reached."""
        from airpods.errors import AirpodsError

        try:
            return self.running()
        except AirpodsError:
            return []

    def specs_or_none(self) -> tuple[dict[str, Any] | None, str | None]:
        """(specs, None), or (None, why) when the config does not validate: stop and clean then act
        on what runs in this project, found by its labels."""
        from airpods.errors import ConfigError

        try:
            return self.specs(create_secrets=False), None
        except ConfigError as exc:
            return None, " ".join([exc.message, *exc.details[:1]])

    def running(self) -> list[Any]:
        """This project's containers as Podman has them, read back from their labels."""
        from airpods.orchestrate.running import in_project

        return in_project(self.runtime.list_managed(), self.project)

    def select(self, specs: dict[str, Any], names: tuple[str, ...], *, enabled_only: bool = True) -> list[str]:
        """Service names from the command line, checked; none given = all enabled services."""
        from airpods.errors import UsageError

        if not names:
            return [n for n, s in specs.items() if s.enabled or not enabled_only]
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
        from airpods.errors import ConfigError
        from airpods.runtime.connect import connect

        try:
            settings = self.runtime_settings or self.loaded.data.get("runtime") or {}
        except ConfigError:  # stop and clean still work with a broken file: the default socket
            settings = {}
        socket = settings.get("socket") if isinstance(settings, dict) else None
        from airpods.runtime.owned import OwnedRuntime

        # Commands see airpods' labels only on what this user's airpods sealed (runtime/owned.py).
        port = connect(url=self.url or (socket if isinstance(socket, str) else None), environ=self.environ)
        if self.trace is not None:  # --debug: every call to Podman, one line each
            from airpods.runtime.trace import Traced

            port = Traced(port, self.trace)
        return OwnedRuntime(port, self.environ)


def _from_cache(hit: Any, from_record: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(specs, runtime settings) from a spec cache entry; None for one that does not read back (a
    damaged or hand-edited file is a miss, never an error)."""
    if not isinstance(hit, dict) or not isinstance(hit.get("specs"), dict) or not isinstance(hit.get("runtime"), dict):
        return None
    try:
        return {n: from_record(r) for n, r in hit["specs"].items()}, hit["runtime"]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None

