"""Can this draft model draft for that target? The comparison llama.cpp makes when it loads them
(common/speculative.cpp, `common_speculative_are_compatible`), made on the two headers before
anything is created. Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Vocab:
    """What llama.cpp compares between a target and its draft (read from a header by
    models/gguf_header.read_vocab): the tokenizer's type, its BOS/EOS settings and every token's
    text (raw bytes)."""

    model: str | None
    tokens: tuple[bytes, ...]
    bos: int | None
    eos: int | None
    add_bos: bool | None
    add_eos: bool | None


MAX_SIZE_DIFFERENCE = 128  # llama.cpp's SPEC_VOCAB_MAX_SIZE_DIFFERENCE
ADDS_BOS = ("llama", "t5")  # tokenizers llama.cpp adds a BOS token for unless the header says
CHECK_FROM = 5  # llama.cpp's SPEC_VOCAB_CHECK_START_TOKEN_ID: the first ids (special tokens) may differ


def vocab_problem(target: Vocab, draft: Vocab) -> str | None:
    """Why llama-server would refuse the pair (in words), or None when it would accept it."""
    if target.model != draft.model:
        return f"the tokenizers differ ({target.model or 'unknown'} vs {draft.model or 'unknown'})"
    bos_default = target.model in ADDS_BOS  # what llama.cpp assumes when the header does not say
    for what, t, d, said_t, said_d, default in (
            ("BOS", target.bos, draft.bos, target.add_bos, draft.add_bos, bos_default),
            ("EOS", target.eos, draft.eos, target.add_eos, draft.add_eos, False)):
        add_t, add_d = default if said_t is None else said_t, default if said_d is None else said_d
        if bool(add_t) != bool(add_d) or (add_t and t != d):
            return f"the {what} tokens differ (id {t} vs {d})"
    n_t, n_d = len(target.tokens), len(draft.tokens)
    if abs(n_t - n_d) > MAX_SIZE_DIFFERENCE:
        return f"the vocabularies differ in size ({n_t} vs {n_d} tokens; at most {MAX_SIZE_DIFFERENCE} apart)"
    for i in range(CHECK_FROM, min(n_t, n_d)):
        if target.tokens[i] != draft.tokens[i]:
            return (f"token {i} differs ({target.tokens[i].decode('utf-8', 'replace')!r} vs "
                    f"{draft.tokens[i].decode('utf-8', 'replace')!r})")
    return None
