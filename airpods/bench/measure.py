"""One bench against a running llama-server, through its own HTTP API (so any image does): a
prompt of about N tokens and N answer tokens with the end-of-text ignored, streamed, with the
prompt cache off; llama-server's own `timings` give prompt and generation tokens/s (and, with a
draft model, how many drafted tokens it accepted); the first streamed token gives its wait."""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import median
from typing import Any
from urllib.parse import urlsplit

from airpods.errors import RuntimeFailure

WORD = " the"  # one token in the usual BPE vocabularies: N of them are about N prompt tokens


@dataclass(frozen=True)
class Request:
    """What one request measured."""

    prompt_n: int
    predicted_n: int
    prompt_per_second: float | None
    predicted_per_second: float | None
    first_token_ms: float | None
    seconds: float
    draft_n: int | None = None
    draft_accepted: int | None = None


@dataclass(frozen=True)
class Figures:
    """A bench's result: medians over its rounds (a round: `parallel` requests at once)."""

    prompt_tokens: int
    gen_tokens: int
    prompt_tokens_per_s: float | None
    generation_tokens_per_s: float | None  # one request's; with parallel > 1, all of a round's together
    first_token_ms: float | None
    rounds: int
    parallel: int
    draft_acceptance: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def one(base: str, key: str | None, model_id: str | None, prompt_tokens: int, gen_tokens: int,
        timeout: float = 600.0) -> Request:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    body: dict[str, Any] = {"prompt": "the" + WORD * max(0, prompt_tokens - 1), "n_predict": gen_tokens,
                            "ignore_eos": True, "cache_prompt": False, "stream": True, "temperature": 0}
    if model_id:
        body["model"] = model_id  # a router sends it to that model's process
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    t0 = time.monotonic()
    first, final = None, None
    try:
        conn.request("POST", "/completion", json.dumps(body), headers)
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeFailure(f"llama-server at {base} answered the bench with HTTP {resp.status}: "
                                 f"{resp.read(300).decode(errors='replace')!r}")
        for raw in resp:
            line = raw.decode(errors="replace").strip()
            if not line.startswith("data:"):
                continue
            chunk = json.loads(line[5:])
            if first is None and (chunk.get("content") or chunk.get("tokens")):
                first = time.monotonic()
            if chunk.get("stop"):
                final = chunk
                break
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise RuntimeFailure(f"the bench's request to {base} failed: {exc}") from None
    finally:
        conn.close()
    timings = (final or {}).get("timings") or {}
    if not timings:
        raise RuntimeFailure(f"llama-server at {base} gave no timings at the end of the answer",
                             hint="airpods bench reads llama-server's own timings; is this a llama-server?")
    return Request(int(timings.get("prompt_n") or 0), int(timings.get("predicted_n") or 0),
                   timings.get("prompt_per_second"), timings.get("predicted_per_second"),
                   None if first is None else (first - t0) * 1000, time.monotonic() - t0,
                   timings.get("draft_n"), timings.get("draft_n_accepted"))


def bench(base: str, key: str | None, model_id: str | None, *, prompt_tokens: int, gen_tokens: int, parallel: int,
          repeat: int, progress: Any = None) -> Figures:
    """A warm-up request (loads the model, fills the caches), then `repeat` rounds."""
    one(base, key, model_id, 8, 4)
    rounds: list[list[Request]] = []
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for i in range(repeat):
            if progress is not None:
                progress(i + 1, repeat)
            t0 = time.monotonic()
            got = list(pool.map(lambda _: one(base, key, model_id, prompt_tokens, gen_tokens), range(parallel)))
            wall = time.monotonic() - t0
            rounds.append(got)
            if parallel > 1:  # the round's throughput: every answer's tokens over the round's time
                got.append(Request(0, sum(r.predicted_n for r in got), None, sum(r.predicted_n for r in got) / wall,
                                   None, wall))
    return _figures(rounds, parallel)


def _figures(rounds: list[list[Request]], parallel: int) -> Figures:
    def med(values: list[float | None]) -> float | None:
        have = [v for v in values if v is not None]
        return median(have) if have else None

    requests = [r for rnd in rounds for r in rnd[:parallel]]
    gen = med([rnd[-1].predicted_per_second for rnd in rounds]) if parallel > 1 else \
        med([r.predicted_per_second for r in requests])
    drafted = sum(r.draft_n or 0 for r in requests)
    accepted = sum(r.draft_accepted or 0 for r in requests)
    return Figures(int(med([r.prompt_n for r in requests]) or 0), int(med([r.predicted_n for r in requests]) or 0),
                   med([r.prompt_per_second for r in requests]), gen, med([r.first_token_ms for r in requests]),
                   len(rounds), parallel, accepted / drafted if drafted else None)
