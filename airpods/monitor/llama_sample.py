"""What one llama-server (or one model of a router) is doing, from two readings of its /metrics and
/slots taken an interval apart. Pure: the readings come in, the figures `airpods top` shows go out.

llama-server counts prompt tokens as it processes them, but adds a request's generated tokens to
its counter only when the request ends, so a long generation would show 0 tokens/s until it
finishes. The generation rate therefore adds what the busy slots decoded during the interval
(`next_token.n_decoded`) and takes out, for the requests that ended within it, what had been
counted from their slots already."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

PREFIX = "llamacpp:"


def _n(value: Any, default: int = 0) -> int:
    """A count from a server's JSON or metrics: a finite number, else `default` (a NaN gauge, a
    string where a number belongs)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    return int(value)


@dataclass(frozen=True)
class Reading:
    at: float  # monotonic seconds
    metrics: dict[str, float] = field(default_factory=dict)  # without the llamacpp: prefix
    slots: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, at: float, metrics: dict[str, float], slots: Any) -> Reading:
        clean = {k.removeprefix(PREFIX): v for k, v in metrics.items() if math.isfinite(v)}  # NaN: no reading
        return cls(at, clean, [s for s in slots if isinstance(s, dict)] if isinstance(slots, list) else [])

    def busy(self) -> dict[int, int]:
        """id_task -> tokens decoded so far, of each slot at work."""
        return {s["id_task"]: _decoded(s) for s in self.slots
                if s.get("is_processing") and isinstance(s.get("id_task"), int)}


def _decoded(slot: dict[str, Any]) -> int:
    nxt = slot.get("next_token")
    first = nxt[0] if isinstance(nxt, list) and nxt else nxt if isinstance(nxt, dict) else {}
    return _n(first.get("n_decoded")) if isinstance(first, dict) else 0


def _counted(before: Reading, after: Reading, counter: str) -> float:
    done = after.metrics.get(counter, 0.0) - before.metrics.get(counter, 0.0)
    return after.metrics.get(counter, 0.0) if done < 0 else done  # < 0: it restarted, counting anew


def generated(before: Reading, after: Reading) -> float:
    """Tokens generated between the two readings: the counter's delta (requests that ended) plus
    what busy slots decoded, less what ended requests had decoded at the first reading."""
    was, now = before.busy(), after.busy()
    live = sum(n - was.get(t, 0) for t, n in now.items())
    ended = sum(n for t, n in was.items() if t not in now)  # counted from their slots already
    return max(0.0, _counted(before, after, "tokens_predicted_total") + live - ended)


@dataclass(frozen=True)
class Activity:
    processing: int
    deferred: int
    prompt_tps: float
    generation_tps: float
    slots_busy: int
    slots_total: int
    kv_used: int  # tokens held by the busy slots' contexts
    kv_total: int  # the slots' context, all together
    contexts: list[dict[str, int]]  # per busy slot: id, tokens used, its context
    draft_acceptance: float | None = None  # drafted tokens the target accepted, since it started (0-1)

    @property
    def kv_percent(self) -> float | None:
        return None if not self.kv_total else 100.0 * self.kv_used / self.kv_total

    def to_json(self) -> dict[str, Any]:
        return {"requests_processing": self.processing, "requests_deferred": self.deferred,
                "prompt_tokens_per_s": round(self.prompt_tps, 2),
                "generation_tokens_per_s": round(self.generation_tps, 2),
                "kv_cache_used_percent": None if self.kv_percent is None else round(self.kv_percent, 1),
                "slots_busy": self.slots_busy, "slots_total": self.slots_total, "slots": self.contexts,
                "draft_acceptance": None if self.draft_acceptance is None else round(self.draft_acceptance, 3)}


def acceptance(reading: Reading) -> float | None:
    """The share of drafted tokens the target accepted, from llama-server's speculative decoding
    counters (None without a draft, or before it drafted anything)."""
    drafted = reading.metrics.get("spec_decode_num_draft_tokens_total", 0.0)
    accepted = reading.metrics.get("spec_decode_num_accepted_tokens_total", 0.0)
    return accepted / drafted if drafted > 0 else None


def activity(before: Reading, after: Reading, unified: bool = False) -> Activity:
    """`unified`: the slots share one cache, and each reports its size as its n_ctx; the KV
    capacity is then that size once, not the slots' sum (top said 9 % of 16,384 for a cache of
    4,096 with 1,479 tokens in it)."""
    wall = max(after.at - before.at, 1e-6)
    contexts = []
    for s in after.slots:
        if s.get("is_processing"):
            used = _n(s.get("n_prompt_tokens")) + _decoded(s)
            contexts.append({"id": _n(s.get("id"), -1), "tokens": used, "n_ctx": _n(s.get("n_ctx"))})
    return Activity(
        processing=_n(after.metrics.get("requests_processing"), len(contexts)),
        deferred=_n(after.metrics.get("requests_deferred")),
        prompt_tps=_counted(before, after, "prompt_tokens_total") / wall,
        generation_tps=generated(before, after) / wall,
        slots_busy=len(contexts), slots_total=len(after.slots),
        kv_used=sum(c["tokens"] for c in contexts),
        kv_total=(max((_n(s.get("n_ctx")) for s in after.slots), default=0) if unified
                  else sum(_n(s.get("n_ctx")) for s in after.slots)),
        contexts=contexts, draft_acceptance=acceptance(after))
