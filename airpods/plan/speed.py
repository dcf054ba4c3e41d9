"""How fast will a model run here? A prediction of llama-server's generation and prompt tokens/s
(pure: facts, a run shape and this machine's figures in, a Prediction out).

    generation: each new token reads every weight once and the KV cache of the context so far,
                so tokens/s = bandwidth / (weights + KV bytes at the context);
    prompt:     batched, so bound by compute, which grows with the weights: tokens/s =
                prompt_rate / weights (prompt_rate: weight-bytes × tokens per second).

The machine's figures come from this machine's own benches (`airpods bench`: each run gives the
bandwidth and prompt rate it achieved, and the median of those is taken), else from the memory
bandwidth `airpods doctor` measured (generation only). A bench is made at the bench's own
context; a prediction for `models fit` and `search` assumes that of a default bench
(BENCH_PROMPT + BENCH_GEN / 2 cells)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from statistics import median
from typing import Any

from airpods.plan.memory import ModelFacts, RunShape, kv_per_layer

BENCH_PROMPT = 512  # tokens a default `airpods bench` sends
BENCH_GEN = 128  # tokens it asks for


@dataclass(frozen=True)
class Sample:
    """What one bench measured, as calibration needs it."""

    model: str
    weights: int  # bytes of weights read per generated token
    kv_bytes: float  # KV cache bytes read per token, at the bench's mean context
    generation: float  # tokens/s
    prompt: float | None  # tokens/s
    threads: int | None = None
    device: str = "cpu"

    @property
    def bandwidth(self) -> float:
        return self.generation * (self.weights + self.kv_bytes)

    @property
    def prompt_rate(self) -> float | None:
        return None if not self.prompt else self.prompt * self.weights


@dataclass(frozen=True)
class Machine:
    """This machine's figures for one device: effective bytes/s for generation, weight-bytes ×
    tokens/s for prompts, and where they come from."""

    bandwidth: float | None
    prompt_rate: float | None
    basis: str
    samples: int = 0


@dataclass(frozen=True)
class Prediction:
    generation: float | None  # tokens/s
    prompt: float | None
    basis: str

    def to_json(self) -> dict[str, Any]:
        return {"generation_tokens_per_s": _round(self.generation), "prompt_tokens_per_s": _round(self.prompt),
                "basis": self.basis}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def kv_bytes(facts: ModelFacts, shape: RunShape, cells: int) -> float:
    """KV cache bytes one token's attention reads at `cells` cells of context (one slot)."""
    return float(sum(kv_per_layer(facts, replace(shape, ctx=max(1, cells), parallel=1))))


def bench_cells(prompt_tokens: int = BENCH_PROMPT, gen_tokens: int = BENCH_GEN) -> int:
    """The mean context while a bench generates: its prompt and half of its answer."""
    return prompt_tokens + gen_tokens // 2


def calibrate(samples: list[Sample], probe_bandwidth: float | None, *, device: str = "cpu",
              exclude: str | None = None, threads: int | None = None) -> Machine:
    """This machine's figures from its benches on `device` (without `exclude`'s own, to predict
    that model from the others; at `threads` when some were made at that count), else from the
    bandwidth probe (CPU only: a GPU's bandwidth is known only from benches on it)."""
    mine = [s for s in samples if s.device == device and s.model != exclude and s.generation > 0]
    same = [s for s in mine if threads is not None and s.threads == threads]
    use = same or mine
    if use:
        rates = [r for r in (s.prompt_rate for s in use) if r]
        n = len(use)
        return Machine(median(s.bandwidth for s in use), median(rates) if rates else None,
                       f"{n} bench{'es' if n > 1 else ''} here", n)
    if device == "cpu" and probe_bandwidth:
        return Machine(probe_bandwidth, None, "this machine's memory bandwidth (airpods doctor); no bench here yet")
    return Machine(None, None, "no bench on this device yet: airpods bench measures it")


def predict(facts: ModelFacts, shape: RunShape, machine: Machine, cells: int | None = None) -> Prediction:
    """Generation and prompt tokens/s of `facts` at `shape` on `machine`, at `cells` of context."""
    kv = kv_bytes(facts, shape, cells if cells is not None else bench_cells())
    per_token = facts.weights + kv
    generation = machine.bandwidth / per_token if machine.bandwidth and per_token else None
    prompt = machine.prompt_rate / facts.weights if machine.prompt_rate and facts.weights else None
    return Prediction(generation, prompt, machine.basis)
