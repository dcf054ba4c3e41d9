"""Will it fit? A memory estimate for one llama.cpp process, from the GGUF header and the argv.

Pure: `ModelFacts` (from a header) and `RunShape` (from the argv) in, `MemoryEstimate` out.

    weights   = the tensors' sizes (mmapped, resident while the model runs)
    kv_cache  = per attention layer: cells × n_head_kv × (key_length + value_length) × bytes(type)
                cells = --ctx-size (the total across --parallel slots; llama.cpp splits it),
                a sliding-window layer holds at most min(ctx, window × slots + ubatch) cells;
                a recurrent layer holds its state per slot instead
    compute   = the graph's scratch buffer: ubatch × 4 × (3 × n_ff + 4 × n_embd), plus the
                attention mask (cells × ubatch × 2) with flash attention, or the KQ matrix
                (cells × ubatch × n_head × 4) without; plus the logits (slots × n_vocab × 4)
    overhead  = the process itself (binary, tokenizer, HTTP server): measured, see OVERHEAD

Checked against llama-server's own buffer reports and cgroup peaks (docs/benchmarks.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

MIB = 1 << 20
OVERHEAD = 30 * MIB  # measured: peak - (weights + KV + compute) was 28-34 MiB for SmolLM2 (benchmarks/memory.py)
# bytes per element of a KV cache type (--cache-type-k/-v)
CACHE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "q4_1": 20 / 32,
               "iq4_nl": 18 / 32, "q5_0": 22 / 32, "q5_1": 24 / 32}
# Architectures whose sliding-window layers llama.cpp lays out by a fixed pattern (every Nth layer
# is global) when the header does not say: gemma2 alternates, gemma3 has 5 local : 1 global.
SWA_PATTERN = {"gemma2": 2, "gemma3": 6, "gemma3n": 5, "cohere2": 4}


@dataclass(frozen=True)
class ModelFacts:
    architecture: str
    weights: int
    n_layer: int
    n_ctx_train: int
    n_embd: int
    n_ff: int
    n_vocab: int
    n_head: tuple[int, ...]  # per layer
    n_head_kv: tuple[int, ...]  # per layer; 0 = no attention (a recurrent layer)
    key_length: int
    value_length: int
    sliding_window: int = 0
    swa_layers: tuple[bool, ...] = ()  # per layer: True = sliding-window attention
    recurrent_state: int = 0  # bytes of state per recurrent layer and slot
    defaults_used: tuple[str, ...] = ()  # keys the header lacked (documented defaults stood in)


@dataclass(frozen=True)
class RunShape:
    ctx: int  # total cells (--ctx-size; 0 = the model's trained context)
    parallel: int = 1
    cache_k: str = "f16"
    cache_v: str = "f16"
    ubatch: int = 512
    flash_attn: bool = True  # llama.cpp's "auto" turns it on where the backend supports it
    kv_unified: bool = False  # one cache of ctx cells that every slot may fill (else ctx / parallel each)

    @property
    def ctx_per_slot(self) -> int:
        """The most one request can hold (0: the trained context)."""
        return self.ctx if self.kv_unified else self.ctx // max(1, self.parallel)


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    kv_cache: int
    compute: int
    overhead: int
    ctx: int
    parallel: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.overhead

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


def _per_layer(value: Any, n_layer: int, default: int) -> tuple[int, ...]:
    if isinstance(value, list) and value:
        return tuple(int(v) for v in value[:n_layer]) + (int(value[-1]),) * max(0, n_layer - len(value))
    return (int(value) if isinstance(value, (int, float)) else default,) * n_layer


def facts_from_header(kv: dict[str, Any], weights: int) -> ModelFacts:
    """What the estimate needs, from a header's key/values; missing keys take documented defaults."""
    arch = str(kv.get("general.architecture") or "llama")
    used: list[str] = []

    def get(key: str, default: Any) -> Any:
        value = kv.get(f"{arch}.{key}")
        if value is None:
            used.append(f"{arch}.{key}")
            return default
        return value

    n_layer = int(get("block_count", 32))
    n_embd = int(get("embedding_length", 4096))
    n_head = _per_layer(get("attention.head_count", 32), n_layer, 32)
    heads = max(n_head) or 1
    n_head_kv = _per_layer(get("attention.head_count_kv", list(n_head)), n_layer, heads)
    ff = get("expert_feed_forward_length", None) if f"{arch}.expert_feed_forward_length" in kv else None
    n_ff_raw = ff if ff is not None else get("feed_forward_length", 4 * n_embd)
    n_ff = max(n_ff_raw) if isinstance(n_ff_raw, list) else int(n_ff_raw)
    if ff is not None:
        n_ff *= int(kv.get(f"{arch}.expert_used_count") or 1)
    key_len = int(get("attention.key_length", n_embd // heads))
    value_len = int(get("attention.value_length", key_len))
    vocab = kv.get(f"{arch}.vocab_size") or getattr(kv.get("tokenizer.ggml.tokens"), "length", None)
    tokens = kv.get("tokenizer.ggml.tokens")
    n_vocab = int(vocab or (len(tokens) if isinstance(tokens, list) else 32000))
    window = int(kv.get(f"{arch}.attention.sliding_window") or 0)
    swa: tuple[bool, ...] = ()
    if window:
        pattern = kv.get(f"{arch}.attention.sliding_window_pattern")
        if isinstance(pattern, list):
            swa = tuple(bool(p) for p in pattern[:n_layer])
        else:
            every = int(pattern) if isinstance(pattern, int) and pattern > 0 else SWA_PATTERN.get(arch, 0)
            swa = tuple(bool(every) and (i + 1) % every != 0 for i in range(n_layer))
    state = 0
    if kv.get(f"{arch}.ssm.state_size"):  # mamba-style: conv + ssm state, f32, per slot
        d_conv, d_inner = int(kv.get(f"{arch}.ssm.conv_kernel") or 4), int(kv.get(f"{arch}.ssm.inner_size") or 0)
        d_state, groups = int(kv[f"{arch}.ssm.state_size"]), int(kv.get(f"{arch}.ssm.group_count") or 1)
        state = 4 * ((d_conv - 1) * (d_inner + 2 * groups * d_state) + d_state * d_inner)
        if f"{arch}.attention.head_count_kv" not in kv:
            n_head_kv = (0,) * n_layer
    elif kv.get(f"{arch}.wkv.head_size"):  # rwkv: token-shift + wkv state, f32, per slot
        head = int(kv[f"{arch}.wkv.head_size"])
        state = 4 * (2 * n_embd + n_embd * head)
        n_head_kv = (0,) * n_layer
    return ModelFacts(arch, weights, n_layer, int(get("context_length", 4096)), n_embd, n_ff, n_vocab, n_head,
                      n_head_kv, key_len, value_len, window, swa, state, tuple(used))


def kv_per_layer(facts: ModelFacts, shape: RunShape) -> list[float]:
    """The KV cache (or recurrent state) each layer holds, in bytes."""
    ctx = shape.ctx or facts.n_ctx_train
    slots = max(1, shape.parallel)
    bytes_k, bytes_v = CACHE_BYTES.get(shape.cache_k, 2.0), CACHE_BYTES.get(shape.cache_v, 2.0)
    swa_cells = min(ctx, -(-(facts.sliding_window * slots + shape.ubatch) // 256) * 256)
    out = []
    for il in range(facts.n_layer):
        heads_kv = facts.n_head_kv[il] if il < len(facts.n_head_kv) else 0
        if heads_kv == 0:
            out.append(float(facts.recurrent_state * slots))
            continue
        cells = swa_cells if facts.sliding_window and il < len(facts.swa_layers) and facts.swa_layers[il] else ctx
        out.append(cells * heads_kv * (facts.key_length * bytes_k + facts.value_length * bytes_v))
    return out


def estimate(facts: ModelFacts, shape: RunShape) -> MemoryEstimate:
    ctx = shape.ctx or facts.n_ctx_train
    slots = max(1, shape.parallel)
    kv = sum(kv_per_layer(facts, shape))
    cells = ctx
    attention = cells * shape.ubatch * 2 if shape.flash_attn else cells * shape.ubatch * max(facts.n_head) * 4
    compute = shape.ubatch * 4 * (3 * facts.n_ff + 4 * facts.n_embd) + attention + slots * facts.n_vocab * 4
    return MemoryEstimate(facts.weights, int(kv), int(compute), OVERHEAD, ctx, slots)


def max_ctx(facts: ModelFacts, shape: RunShape, available: int,
            draft: tuple[ModelFacts, RunShape] | None = None) -> int:
    """The largest --ctx-size (a multiple of 256, at least 256) whose estimate fits, or 0; with a
    draft (its facts and shape), the draft's context grows with the target's."""
    def fits(ctx: int) -> bool:
        total = estimate(facts, replace(shape, ctx=ctx))
        if draft is not None:
            total = with_draft(total, estimate(draft[0], replace(draft[1], ctx=ctx)))
        return total.total <= available

    if not fits(256):
        return 0
    lo, hi = 1, max(1, facts.n_ctx_train // 256)  # not past the trained context
    while lo < hi:  # largest k with fits(256 * k)
        mid = (lo + hi + 1) // 2
        if fits(256 * mid):
            lo = mid
        else:
            hi = mid - 1
    return 256 * lo


def parse_size(text: str) -> int:
    """'512m', '8g', '1.5G', '1024' (bytes) → bytes (the format of resources.memory)."""
    text = text.strip().lower().removesuffix("b") or "0"
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(text[-1], 1)
    return int(float(text[:-1] if scale != 1 else text) * scale)


def human(n: int) -> str:
    """Bytes as people read memory sizes (MiB up to 10 GiB, then GiB)."""
    return f"{n / MIB:.0f} MiB" if n < 10 << 30 else f"{n / (1 << 30):.1f} GiB"


@dataclass(frozen=True)
class LlamaRun:
    """What a llama-server process is run with, typed: carried on the ServiceSpec (`llama`) so that
    the memory check, the GPU plan and the labels never parse argv again."""

    model: str | None = None  # the --model path as given
    shape: RunShape = RunShape(0)
    gpu_layers: str | None = None  # --n-gpu-layers as given ("auto", "all", a number); None: unset
    draft: str | None = None  # --model-draft as given (speculative decoding)
    draft_cache: tuple[str, str] = ("f16", "f16")  # the draft's KV cache types (-ctkd, -ctvd)
    draft_on_cpu: bool = False  # told to stay off the GPUs (--gpu-layers-draft 0, --device-draft none)

    @property
    def model_in_volume(self) -> str | None:
        """The file in the model volume (/models/NAME), or None."""
        return in_volume(self.model)

    @property
    def draft_in_volume(self) -> str | None:
        return in_volume(self.draft)

    @property
    def draft_shape(self) -> RunShape:
        """The draft's context: as many cells per slot as the target's (llama.cpp sizes it so)."""
        return replace(self.shape, cache_k=self.draft_cache[0], cache_v=self.draft_cache[1])

    @property
    def offloads(self) -> bool:
        """False only when the layers on the GPU are set to 0."""
        return not (self.gpu_layers is not None and self.gpu_layers.lstrip("-").isdigit() and int(self.gpu_layers) == 0)

    def label(self) -> str:
        s = self.shape
        return (f"ctx={s.ctx},parallel={s.parallel},cache_k={s.cache_k},cache_v={s.cache_v}"
                + (",kv_unified" if s.kv_unified else "")
                + (f",ngl={self.gpu_layers}" if self.gpu_layers is not None else "")
                + (f",draft={self.draft_in_volume or self.draft}" if self.draft else ""))


def in_volume(path: str | None) -> str | None:
    return path[len("/models/"):] if path and path.startswith("/models/") else None


def with_draft(target: MemoryEstimate, draft: MemoryEstimate) -> MemoryEstimate:
    """A target and its draft in one process: both models' weights, KV caches and compute buffers,
    one process's overhead."""
    return MemoryEstimate(target.weights + draft.weights, target.kv_cache + draft.kv_cache,
                          target.compute + draft.compute, target.overhead, target.ctx, target.parallel)


_RUN_FLAGS = {"--ctx-size": "ctx", "-c": "ctx", "--parallel": "parallel", "-np": "parallel",
              "--cache-type-k": "cache_k", "-ctk": "cache_k", "--cache-type-v": "cache_v", "-ctv": "cache_v",
              "--ubatch-size": "ubatch", "-ub": "ubatch", "--flash-attn": "flash_attn", "-fa": "flash_attn",
              "--model": "model", "-m": "model", "--n-gpu-layers": "ngl", "-ngl": "ngl", "--gpu-layers": "ngl",
              "--model-draft": "draft", "-md": "draft", "--spec-draft-model": "draft",
              "--cache-type-k-draft": "draft_k", "-ctkd": "draft_k", "--spec-draft-type-k": "draft_k",
              "--cache-type-v-draft": "draft_v", "-ctvd": "draft_v", "--spec-draft-type-v": "draft_v",
              "--gpu-layers-draft": "draft_ngl", "-ngld": "draft_ngl", "--n-gpu-layers-draft": "draft_ngl",
              "--spec-draft-ngl": "draft_ngl", "--device-draft": "draft_dev", "-devd": "draft_dev",
              "--spec-draft-device": "draft_dev"}
_KV_FLAGS = {"--kv-unified": True, "-kvu": True, "--no-kv-unified": False, "-no-kvu": False}


def run_from_argv(argv: list[str] | tuple[str, ...]) -> LlamaRun:
    """llama-server's own reading of its argv: `--flag value` and `--flag=value`, the last one
    wins (defaults: the trained context, 1 slot, f16 caches). Done once, in resolve."""
    found: dict[str, str] = {}
    items = list(argv)
    unified: bool | None = None
    for i, item in enumerate(items):
        flag, eq, inline = item.partition("=")
        if item in _KV_FLAGS:
            unified = _KV_FLAGS[item]
        if flag in _RUN_FLAGS and eq:
            found[_RUN_FLAGS[flag]] = inline
        elif item in _RUN_FLAGS and i + 1 < len(items):
            found[_RUN_FLAGS[item]] = items[i + 1]

    def number(key: str, default: int) -> int:
        try:
            return int(found.get(key, default))
        except ValueError:
            return default

    if unified is None:  # llama-server's default: unified when the slots are left to it (auto)
        unified = number("parallel", -1) < 1
    shape = RunShape(number("ctx", 0), max(1, number("parallel", 1)), found.get("cache_k", "f16"),
                     found.get("cache_v", "f16"), number("ubatch", 512),
                     found.get("flash_attn", "auto").lower() not in ("off", "0", "false", "disabled"), unified)
    off_gpu = found.get("draft_ngl", "").strip() == "0" or found.get("draft_dev", "").strip().lower() == "none"
    return LlamaRun(found.get("model"), shape, found.get("ngl"), found.get("draft"),
                    (found.get("draft_k", "f16"), found.get("draft_v", "f16")), off_gpu)


def shape_from_argv(argv: list[str] | tuple[str, ...]) -> RunShape:
    return run_from_argv(argv).shape
