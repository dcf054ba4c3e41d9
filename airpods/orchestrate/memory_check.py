"""Memory preflight: each llama.cpp service's estimate against what it may use, before anything
is created. What it may use: its resources.memory limit, else runtime.memory_budget minus what the
llama.cpp services already running use (measured where Podman can, else their estimate); free
VRAM per device for a GPU variant that offloads layers."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airpods.errors import UsageError
from airpods.kinds import kind_of
from airpods.models.gguf import GGUFError
from airpods.orchestrate.preflight import model_in_volume
from airpods.plan.memory import (
    MemoryEstimate,
    ModelFacts,
    estimate,
    facts_from_header,
    human,
    max_ctx,
    parse_size,
    run_from_argv,
    with_draft,
)
from airpods.plan.spec import ServiceSpec

if TYPE_CHECKING:
    from airpods.models.facts_cache import FactsCache
    from airpods.runtime.port import ContainerRuntime

BUDGET_SHARE = 0.8  # runtime.memory_budget = "auto": 80% of the machine's (or cgroup's) memory


@dataclass(frozen=True)
class FitReport:
    service: str
    model: str
    estimate: MemoryEstimate
    available: int | None  # None: no budget applies
    limit: str  # where `available` comes from, in words
    others: tuple[tuple[str, int, str], ...] = ()  # (service, bytes, "measured" | "estimated")
    max_ctx: int = 0
    router: bool = False  # the sum of the largest max_loaded models of a router service

    @property
    def fits(self) -> bool:
        return self.available is None or self.estimate.total <= self.available

    def to_json(self) -> dict[str, Any]:
        e = self.estimate
        return {"service": self.service, "model": self.model, "ctx": e.ctx, "parallel": e.parallel,
                "weights": e.weights, "kv_cache": e.kv_cache, "compute": e.compute, "overhead": e.overhead,
                "total": e.total, "available": self.available, "limit": self.limit, "fits": self.fits,
                "max_ctx": self.max_ctx,
                "others": [{"service": s, "bytes": b, "how": how} for s, b, how in self.others]}

    def lines(self) -> list[str]:
        e = self.estimate
        out = [f"{self.model} at ctx {e.ctx} × {e.parallel} slot{'s' if e.parallel > 1 else ''}: "
               f"weights {human(e.weights)} + KV cache {human(e.kv_cache)} + compute {human(e.compute)} "
               f"+ overhead {human(e.overhead)} = {human(e.total)}"]
        if self.available is not None:
            out.append(f"available to {self.service}: {human(self.available)} ({self.limit})")
        out += [f"  {s} uses {human(b)} ({how})" for s, b, how in self.others]
        return out


@functools.lru_cache(maxsize=32)
def _facts(path: str, mtime: int, size: int) -> ModelFacts:
    from airpods.models.gguf_header import read_model

    header = read_model(Path(path))
    return facts_from_header(header.kv, header.tensor_bytes)


def model_facts(root: Path, name: str, kept: FactsCache | None = None) -> ModelFacts | None:
    """The model's facts, from its header (cached per file version in this process, and in `kept`
    between commands); None when unreadable."""
    from airpods.models.store import inside

    try:
        path = inside(root, name)
        st = path.stat()
        if kept is not None and (hit := kept.get(str(path), st.st_mtime_ns, st.st_size)) is not None:
            return hit
        facts = _facts(str(path), st.st_mtime_ns, st.st_size)
    except (OSError, GGUFError, UsageError):
        return None
    if kept is not None:
        kept.put(str(path), st.st_mtime_ns, st.st_size, facts)
    return facts


def budget(setting: str, total: int, source: str) -> tuple[int | None, str]:
    if setting == "off":
        return None, "runtime.memory_budget = \"off\""
    if setting == "auto":
        return int(total * BUDGET_SHARE), f"runtime.memory_budget = \"auto\": 80% of {human(total)} ({source})"
    return parse_size(setting), f"runtime.memory_budget = \"{setting}\""


def _available(spec: ServiceSpec, *, budget_bytes: int | None, budget_why: str, others: list[tuple[str, int, str]],
               vram: list[int] | None = None) -> tuple[int | None, str, tuple[tuple[str, int, str], ...]]:
    """(what the service may use, where that comes from, the running services counted against it)."""
    offloads = spec.run.offloads
    if vram and spec.variant != "cpu" and offloads and spec.gpu_layers is None:  # planned: vram_check.py
        return max(vram), f"free VRAM on the best of {len(vram)} GPU(s)", ()
    if spec.memory:
        return parse_size(spec.memory), f"services.{spec.name}.resources.memory = \"{spec.memory}\"", ()
    if budget_bytes is None:
        return None, budget_why, ()
    available = max(0, budget_bytes - sum(b for _, b, _ in others))
    return available, budget_why + (", minus the llama.cpp services running" if others else ""), tuple(others)


def assess(spec: ServiceSpec, facts: ModelFacts, model: str, *, budget_bytes: int | None, budget_why: str,
           others: list[tuple[str, int, str]], vram: list[int] | None = None,
           draft: ModelFacts | None = None) -> FitReport:
    shape = spec.run.shape
    available, why, counted = _available(spec, budget_bytes=budget_bytes, budget_why=budget_why, others=others,
                                         vram=vram)
    est = estimate(facts, shape)
    if draft is not None:  # the draft runs in the same process, its context as large as the target's
        est = with_draft(est, estimate(draft, spec.run.draft_shape))
        model += f" + draft {spec.run.draft_in_volume}"
    if spec.gpu_layers is not None and spec.gpu_ram is not None:  # the GPU plan: only the rest is in RAM
        weights, kv, compute = spec.gpu_ram_parts or (spec.gpu_ram, 0, 0)
        est = MemoryEstimate(weights, kv, compute, est.overhead, est.ctx, est.parallel)
        if draft is not None and spec.run.draft_on_cpu:  # told to stay off the GPUs: all of it in RAM
            est = with_draft(est, estimate(draft, spec.run.draft_shape))
        model += f" (the part in RAM; {spec.gpu_layers} layers on GPU {','.join(map(str, spec.gpus))})"
        return FitReport(spec.name, model, est, available, why, counted, 0)
    return FitReport(spec.name, model, est, available, why, counted,
                     max_ctx(facts, shape, available, (draft, spec.run.draft_shape) if draft else None)
                     if available is not None else 0)


def advice(report: FitReport) -> str:
    tips = []
    if report.router:
        tips.append(f"lower services.{report.service}.max_loaded, or give it more memory")
    elif report.max_ctx:
        tips.append(f"set services.{report.service}.command_args.ctx_size = {report.max_ctx} (the largest that fits)")
    else:
        tips.append("use a smaller quantization of the model (e.g. Q4_K_M instead of Q8_0) or a smaller model")
    tips += [f"stop {s} (airpods stop {s}), which uses {human(b)}" for s, b, _ in report.others]
    tips.append("or start anyway: airpods start --force (or services."
                f"{report.service}.memory_check = \"warn\")")
    return "; ".join(tips)


def refuse(reports: list[FitReport]) -> UsageError:
    first = reports[0]
    return UsageError(
        f"service '{first.service}' needs about {human(first.estimate.total)} but "
        f"{human(first.available or 0)} is available; nothing was created",
        details=[line for r in reports for line in r.lines()], hint=advice(first))


def _root(runtime: ContainerRuntime, spec: ServiceSpec, models_volume: str) -> Path | None:
    volume = next((v.source for v in spec.volumes if v.target == "/models"), models_volume)
    path = runtime.volume_path(volume) if runtime.volume_exists(volume) else None
    return Path(path) if path else None


def router_report(spec: ServiceSpec, root: Path, *, budget_bytes: int | None, budget_why: str,
                  others: list[tuple[str, int, str]], kept: FactsCache | None = None) -> FitReport | None:
    """A router holds up to max_loaded models at once: the sum of the largest that many estimates."""
    from airpods.plan.argv import render_args

    assert spec.router is not None
    found = []
    left_out = {i for i, _ in spec.resident_left_out}  # never loaded: not in its preset
    for m in (m for m in spec.router.models if m.id not in left_out):
        facts = model_facts(root, m.file, kept)
        if facts is not None:
            run = run_from_argv(render_args({**dict(spec.router.defaults), **dict(m.args)}))
            draft = model_facts(root, run.draft_in_volume, kept) if run.draft_in_volume else None
            est = estimate(facts, run.shape)
            found.append((m.id, with_draft(est, estimate(draft, run.draft_shape)) if draft else est))
    if not found:
        return None
    top = sorted(found, key=lambda pair: pair[1].total, reverse=True)[:spec.router.processes]
    est = MemoryEstimate(sum(e.weights for _, e in top), sum(e.kv_cache for _, e in top),
                         sum(e.compute for _, e in top), sum(e.overhead for _, e in top),
                         max(e.ctx for _, e in top), len(top))
    label = " + ".join(i for i, _ in top) + f" (up to {len(top)} loaded at once)"
    available, why, counted = _available(spec, budget_bytes=budget_bytes, budget_why=budget_why, others=others)
    return FitReport(spec.name, label, est, available, why, counted, router=True)


def report_at(spec: ServiceSpec, root: Path, *, budget_bytes: int | None, budget_why: str,
              others: list[tuple[str, int, str]], vram: list[int] | None = None,
              kept: FactsCache | None = None) -> FitReport | None:
    """The report for one llama.cpp spec whose model volume is the directory `root`; None when its
    model cannot be read there."""
    if spec.router is not None:
        return router_report(spec, root, budget_bytes=budget_bytes, budget_why=budget_why, others=others,
                             kept=kept)
    model = model_in_volume(spec)
    facts = model_facts(root, model, kept) if model else None
    if facts is None or model is None:
        return None
    name = spec.run.draft_in_volume
    draft = model_facts(root, name, kept) if name else None
    return assess(spec, facts, model, budget_bytes=budget_bytes, budget_why=budget_why, others=others, vram=vram,
                  draft=draft)


def fit_report(runtime: ContainerRuntime, spec: ServiceSpec, models_volume: str, *, budget_bytes: int | None,
               budget_why: str, others: list[tuple[str, int, str]],
               vram: list[int] | None = None, kept: FactsCache | None = None) -> FitReport | None:
    """The report for one llama.cpp spec, its volume found through the runtime; None when its model
    cannot be read here."""
    root = _root(runtime, spec, models_volume)
    return report_at(spec, root, budget_bytes=budget_bytes, budget_why=budget_why, others=others,
                     vram=vram, kept=kept) if root else None


def running_llama(runtime: ContainerRuntime, specs: dict[str, ServiceSpec], exclude: set[str], models_volume: str,
                  kept: FactsCache | None = None) -> list[tuple[str, int, str]]:
    """What this project's llama.cpp containers (running, or created by a start still under way)
    hold, read from Podman: the larger of what they use now and the estimate stamped on them at
    create time (a model still loading has touched only part of its weights)."""
    from airpods.orchestrate.running import in_project

    project = next((s.project for s in specs.values()), "default")
    out = []
    for r in in_project(runtime.list_managed(), project):
        spec = specs.get(r.service)
        is_llama = kind_of(r.kind).llama_server or (not r.kind and spec is not None and kind_of(spec.kind).llama_server)
        if not is_llama or r.service in exclude or not (r.state.running or r.state.status == "created"):
            continue
        used = runtime.memory_usage(r.container) if r.state.running else None
        estimated = r.memory_estimate
        if estimated is None and spec is not None and r.matches(spec):  # created before estimates were stamped
            report = fit_report(runtime, spec, models_volume, budget_bytes=None, budget_why="", others=[],
                                kept=kept)
            estimated = report.estimate.total if report is not None else None
        if used is not None and (estimated is None or used >= estimated):
            out.append((r.service, used, "measured"))
        elif estimated is not None:
            out.append((r.service, estimated, "estimated" if used is None else "estimated; loading"))
    return out


def check_memory(runtime: ContainerRuntime, specs: dict[str, ServiceSpec], todo: list[ServiceSpec], *,
                 models_volume: str, budget_setting: str, memory_total: int, memory_source: str, force: bool = False,
                 vram_for: Any = None, kept: FactsCache | None = None) -> tuple[dict[str, FitReport], list[str]]:
    """Refuse (UsageError, exit 2) when a llama.cpp service's estimate exceeds what it may use;
    with --force or memory_check = "warn" it is a warning instead. Services started together
    count against each other in start order."""
    checked = [s for s in todo if kind_of(s.kind).llama_server and s.memory_check != "off"]
    if not checked:
        return {}, []
    budget_bytes, why = budget(budget_setting, memory_total, memory_source)
    others = running_llama(runtime, specs, {s.name for s in todo}, models_volume, kept)
    reports: dict[str, FitReport] = {}
    refused: list[FitReport] = []
    warnings: list[str] = []
    for spec in checked:
        # A service the GPU plan placed is checked per GPU by vram_check.py: no second probe here.
        vram = vram_for(spec.variant) if vram_for and spec.gpu_layers is None else None
        report = fit_report(runtime, spec, models_volume, budget_bytes=budget_bytes, budget_why=why,
                            others=list(others), vram=vram, kept=kept)
        if report is None:
            continue
        reports[spec.name] = report
        if not report.fits:
            if spec.memory_check == "refuse" and not force:
                refused.append(report)
            else:
                warnings.append(f"{spec.name}: needs about {human(report.estimate.total)}, "
                                f"{human(report.available or 0)} available ({report.limit}); starting anyway")
        others.append((spec.name, report.estimate.total, "estimated, starting now"))
    if refused:
        raise refuse(refused)
    return reports, warnings
