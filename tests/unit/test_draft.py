"""Models with a role and draft models: the flags each becomes (a single-model service's argv, a
router model's preset section), the config errors, the vocabulary comparison llama.cpp makes
(from headers built here), the memory estimate of a target with its draft, and a start refused
before anything is created when the draft's vocabulary is another."""

from __future__ import annotations

from pathlib import Path

import pytest

from airpods.errors import UsageError
from airpods.models.gguf_header import read_vocab
from airpods.orchestrate.memory_check import check_memory, model_facts
from airpods.plan.draft_vocab import Vocab, vocab_problem
from airpods.plan.memory import OVERHEAD, estimate, run_from_argv
from tests.gguf_builder import llama_like, write_gguf
from tests.unit.builders import MODELS, render

F16 = 1
TOKENS = [f"<s{i}>" for i in range(5)] + [f"tok{i}" for i in range(300)]


def _vocab(tokens=TOKENS, model="gpt2", bos=1, eos=2) -> dict:
    return {"tokenizer.ggml.model": model, "tokenizer.ggml.tokens": list(tokens),
            "tokenizer.ggml.bos_token_id": bos, "tokenizer.ggml.eos_token_id": eos}


def _model(volume: Path, name: str, n_layer: int, n_embd: int, **vocab) -> Path:
    kv = {**llama_like("llama", n_layer, n_embd, 4, 2, 4 * n_embd, len(vocab.get("tokens", TOKENS)), 2048),
          **_vocab(**vocab)}
    return write_gguf(volume / name, kv, [("token_embd.weight", F16, [n_embd, 305]),
                                          ("blk.0.ffn_up.weight", F16, [n_embd, 4 * n_embd * n_layer])])


def test_vocab_comparison_is_llama_cpps(tmp_path):
    same = Vocab("gpt2", tuple(t.encode() for t in TOKENS), 1, 2, None, None)
    assert vocab_problem(same, same) is None
    specials = Vocab("gpt2", (b"x",) * 5 + same.tokens[5:], 1, 2, None, None)
    assert vocab_problem(same, specials) is None  # ids below 5 are not compared (llama.cpp's start id)
    longer = Vocab("gpt2", same.tokens + (b"extra",) * 100, 1, 2, None, None)
    assert vocab_problem(same, longer) is None  # up to 128 apart, the shared ids compared
    assert "differ in size" in vocab_problem(same, Vocab("gpt2", same.tokens + (b"e",) * 129, 1, 2, None, None))
    assert "tokenizers differ (gpt2 vs llama)" in vocab_problem(same, Vocab("llama", same.tokens, 1, 2, None, None))
    other = same.tokens[:7] + (b"zzz",) + same.tokens[8:]
    assert vocab_problem(same, Vocab("gpt2", other, 1, 2, None, None)) == "token 7 differs ('tok2' vs 'zzz')"
    assert "BOS" in vocab_problem(same, Vocab("gpt2", same.tokens, 9, 2, True, None))
    assert vocab_problem(Vocab("llama", same.tokens, 1, 2, None, None),
                         Vocab("llama", same.tokens, 1, 2, True, None)) is None  # llama adds a BOS when unsaid
    path = _model(tmp_path, "m.gguf", 2, 64)  # the reader keeps every token's bytes
    assert read_vocab(path) == Vocab("gpt2", tuple(t.encode() for t in TOKENS), 1, 2, None, None)


SINGLE = """
[services.llamacpp]
default_model = "target.gguf"
draft_model = "draft.gguf"
"""


def test_a_draft_and_roles_become_llama_servers_flags(cli, write_config):
    cmd = render(cli, write_config(SINGLE))["command"]
    assert cmd[cmd.index("--model-draft") + 1] == "/models/draft.gguf"
    assert cmd[cmd.index("--spec-type") + 1] == "draft-simple"  # a plain draft GGUF names no type itself
    own = render(cli, write_config(SINGLE + '[services.llamacpp.command_args]\nspec_type = "draft-simple,ngram-mod"\n'))
    assert own["command"].count("--spec-type") == 1 and "draft-simple,ngram-mod" in own["command"]
    rerank = render(cli, write_config('[services.llamacpp]\nrole = "rerank"\n'))["command"]
    assert "--reranking" in rerank and "--model-draft" not in rerank
    embed = render(cli, write_config('[services.llamacpp]\nrole = "embed"\n'))["command"]
    assert "--embeddings" in embed and embed[embed.index("--pooling") + 1] == "mean"
    chosen = render(cli, write_config('[services.llamacpp]\nrole = "embed"\ncommand_args = { pooling = "cls" }\n'))
    assert chosen["command"].count("--pooling") == 1 and "cls" in chosen["command"]
    chat = render(cli, write_config(""))["command"]
    assert not {"--reranking", "--embeddings", "--model-draft", "--spec-type"} & set(chat)


ROUTER = """
[services.llamacpp]
mode = "router"
default_model = "chat"
[services.llamacpp.models.chat]
file = "target.gguf"
draft_model = "draft.gguf"
[services.llamacpp.models.rank]
file = "ranker.gguf"
role = "rerank"
[services.llamacpp.models.vec]
file = "embed.gguf"
role = "embed"
"""


def test_router_models_say_their_role_and_draft_in_their_preset_section(cli, write_config):
    out = render(cli, write_config(ROUTER))
    sections = {s.split("]", 1)[0]: s for s in out["router_preset"].split("\n[")[1:]}
    assert "model-draft = /models/draft.gguf" in sections["chat"] and "spec-type = draft-simple" in sections["chat"]
    assert "reranking = true" in sections["rank"] and "model-draft" not in sections["rank"]
    assert "embeddings = true" in sections["vec"] and "pooling = mean" in sections["vec"]
    roles = {m["id"]: m["role"] for m in out["router"]["models"]}
    assert roles == {"chat": "chat", "rank": "rerank", "vec": "embed"}
    assert {m["id"]: m["draft"] for m in out["router"]["models"]}["chat"] == "draft.gguf"


@pytest.mark.parametrize(("extra", "expected"), [
    ('draft_model = "../d.gguf"', "plain .gguf file name"),
    ('role = "rerank"\ndraft_model = "d.gguf"', "a 'rerank' model has none to draft"),
    ('role = "judge"', "services.llamacpp.role"),
])
def test_wrong_role_or_draft_is_a_config_error(cli, write_config, extra, expected):
    result = cli("--config", write_config(f"[services.llamacpp]\n{extra}\n"), "config", "validate")
    assert result.code == 2 and expected in result.err and "Traceback" not in result.err


def test_draft_model_on_a_router_service_itself_points_at_its_models(cli, write_config):
    text = ROUTER.replace('default_model = "chat"', 'default_model = "chat"\ndraft_model = "d.gguf"')
    result = cli("--config", write_config(text), "config", "validate")
    assert result.code == 2 and "models.ID.draft_model" in result.err
    both = ROUTER.replace('role = "embed"', 'role = "rerank"\nembeddings = true')
    result = cli("--config", write_config(both), "config", "validate")
    assert result.code == 2 and "keep one of them" in result.err


def test_the_estimate_counts_the_drafts_weights_cache_and_compute(fake):
    from airpods.plan.spec import VolumeSpec
    from tests.unit.builders import spec

    fake.ensure_volume(MODELS)
    root = Path(fake.volume_path(MODELS))
    _model(root, "target.gguf", 12, 256)
    _model(root, "draft.gguf", 2, 64)
    argv = ("--model", "/models/target.gguf", "--model-draft", "/models/draft.gguf", "--ctx-size", "2048",
            "-np", "1", "-ctkd", "q8_0")
    a = spec("a", kind="llamacpp", volumes=(VolumeSpec(MODELS, "/models", "ro"),), command=argv)
    reports, _ = check_memory(fake, {"a": a}, [a], models_volume=MODELS, budget_setting="off",
                              memory_total=1 << 40, memory_source="MemTotal")
    run = run_from_argv(argv)
    target = estimate(model_facts(root, "target.gguf"), run.shape)
    draft = estimate(model_facts(root, "draft.gguf"), run.draft_shape)
    got = reports["a"].estimate
    assert run.draft_shape.cache_k == "q8_0" and draft.ctx == 2048  # the draft's context: the target's size
    assert (got.weights, got.kv_cache, got.compute) == (target.weights + draft.weights,
                                                        target.kv_cache + draft.kv_cache,
                                                        target.compute + draft.compute)
    assert got.total == target.total + draft.total - OVERHEAD and draft.weights > 0 and draft.kv_cache > 0
    assert "+ draft draft.gguf" in reports["a"].model
    tight = spec("a", kind="llamacpp", volumes=a.volumes, command=argv, memory=f"{target.total >> 20}m")
    with pytest.raises(UsageError) as err:  # fits alone, not with its draft
        check_memory(fake, {"a": tight}, [tight], models_volume=MODELS, budget_setting="off",
                     memory_total=1 << 40, memory_source="MemTotal")
    assert "draft draft.gguf" in "\n".join(err.value.details)


@pytest.mark.parametrize("memory_check", ["refuse", "off"])
def test_a_draft_of_another_vocabulary_is_refused_before_anything_is_created(rt, cli, write_config,
                                                                                memory_check):
    root = Path(rt.volume_path(MODELS))
    _model(root, "target.gguf", 4, 128)
    _model(root, "other.gguf", 2, 64, tokens=TOKENS[:100] + ["different"] + TOKENS[101:])
    text = SINGLE.replace("draft.gguf", "other.gguf") + f'memory_check = "{memory_check}"\n'
    result = cli("--config", write_config(text), "start", "llamacpp", "--no-wait")
    assert result.code == 2, result.text
    assert "draft model other.gguf cannot draft for target.gguf" in result.err and "token 100 differs" in result.err
    assert "services.llamacpp.draft_model" in result.err and "Traceback" not in result.err
    assert rt.containers == {} and not rt.pods
    _model(root, "draft.gguf", 2, 64)
    started = cli("--config", write_config(SINGLE), "start", "llamacpp", "--no-wait")
    assert started.code == 0, started.text
    [spec] = rt.specs.values()
    assert "/models/draft.gguf" in spec.command


def test_a_missing_draft_is_named_like_a_missing_model(rt, cli, write_config):
    _model(Path(rt.volume_path(MODELS)), "target.gguf", 4, 128)
    result = cli("--config", write_config(SINGLE), "start", "llamacpp", "--no-wait")
    assert result.code == 2 and "model draft.gguf is not in the model volume" in result.err
    assert rt.containers == {}


def test_the_gpu_plan_puts_the_draft_beside_its_target_and_counts_it():
    from airpods.plan.gpu_plan import GpuClaim, ModelCost, plan_gpus
    from airpods.probes.gpu import Gpu

    GIB = 1 << 30

    def gpus(*sizes):
        return tuple(Gpu(i, f"GPU-{i}", "Fake GPU", int(s * GIB), int(s * GIB)) for i, s in enumerate(sizes))

    each = 7 * GIB // 41
    target = ModelCost((each,) * 40, each, 100 << 20, 256 << 20)
    alone = plan_gpus(gpus(8, 12), [GpuClaim("chat", target)])["chat"]
    assert alone.gpus == (0,)  # the fullest GPU that holds it
    paired = target.with_draft(2 * GIB)
    with_draft = plan_gpus(gpus(8, 12), [GpuClaim("chat", paired)])["chat"]
    assert with_draft.gpus == (1,) and dict(with_draft.vram)[1] == dict(alone.vram)[0] + 2 * GIB
    squeezed = plan_gpus(gpus(8), [GpuClaim("chat", paired)])["chat"]  # fewer target layers make room
    assert squeezed.layers < alone.layers and dict(squeezed.vram)[0] <= 8 * GIB
    assert dict(squeezed.vram)[0] >= paired.on_gpu(squeezed.layers) + 2 * GIB


def test_top_shows_the_share_of_drafted_tokens_the_target_accepted():
    from airpods.monitor.llama_sample import Reading, activity

    before = Reading.of(0.0, {"llamacpp:spec_decode_num_draft_tokens_total": 0.0}, [])
    after = Reading.of(1.0, {"llamacpp:spec_decode_num_draft_tokens_total": 120.0,
                             "llamacpp:spec_decode_num_accepted_tokens_total": 90.0}, [])
    assert activity(before, after).to_json()["draft_acceptance"] == 0.75
    assert activity(before, before).to_json()["draft_acceptance"] is None  # nothing drafted (or no draft)


ROLES_STACK = """
[services.llamacpp]
default_model = "chat.gguf"
[services.vec]
kind = "llamacpp"
image = "ghcr.io/ggml-org/llama.cpp:server"
role = "embed"
ports = [{ container = 8080 }]
default_model = "nomic.gguf"
api_key = "auto"
command_args = { model = "/models/{{ default_model }}" }
[services.ranker]
kind = "llamacpp"
image = "ghcr.io/ggml-org/llama.cpp:server"
role = "rerank"
ports = [{ container = 8080 }]
default_model = "bge-reranker.gguf"
api_key = "auto"
command_args = { model = "/models/{{ default_model }}" }
"""


def test_open_webui_gets_the_embedder_and_the_reranker_with_their_keys_as_secrets(cli, write_config):
    ui = render(cli, write_config(ROLES_STACK), "open-webui")
    env = ui["env"]
    assert env["RAG_EMBEDDING_ENGINE"] == "openai" and env["RAG_OPENAI_API_BASE_URL"] == "http://vec:8080/v1"
    assert env["RAG_EMBEDDING_MODEL"] == "nomic"
    assert env["RAG_RERANKING_ENGINE"] == "external" and env["RAG_RERANKING_MODEL"] == "bge-reranker"
    assert env["RAG_EXTERNAL_RERANKER_URL"] == "http://ranker:8080/v1/rerank"
    assert env["ENABLE_RAG_HYBRID_SEARCH"] == "true"  # Open WebUI reranks only in hybrid search
    assert env["RAG_EXTERNAL_RERANKER_API_KEY"] == "********" and env["RAG_OPENAI_API_KEY"] == "********"
    shown = render(cli, write_config(ROLES_STACK), "open-webui", "--show-secrets")["env"]
    assert shown["RAG_EXTERNAL_RERANKER_API_KEY"] == render(cli, write_config(ROLES_STACK), "ranker",
                                                            "--show-secrets")["env"]["LLAMA_API_KEY"]
    assert "vec" in ui["wired_to"] and "ranker" in ui["wired_to"] and "llamacpp" in ui["wired_to"]
    chat_urls = env["OPENAI_API_BASE_URLS"].split(";")
    assert chat_urls == ["http://llamacpp:8080/v1"]  # the embedder and the reranker are no chat models
    own = ROLES_STACK + '[services.open-webui.env]\nRAG_RERANKING_ENGINE = "none-thanks"\n'
    assert render(cli, write_config(own), "open-webui")["env"]["RAG_RERANKING_ENGINE"] == "none-thanks"


def test_run_and_pull_take_the_draft_with_its_model_and_refuse_a_pair_of_two_vocabularies(monkeypatch, tmp_path, fake,
                                                                                    cli, write_config):
    from tests.hub_standin import serve

    def gguf(name: str, model: str) -> bytes:
        kv = {**llama_like("llama", 2, 64, 4, 2, 256, 305, 2048), **_vocab(model=model), "general.file_type": 7}
        return write_gguf(tmp_path / name, kv, [("token_embd.weight", F16, [64, 305])]).read_bytes()

    _, server = serve(monkeypatch, {"org/Big-GGUF": {"big-Q4_K_M.gguf": gguf("a", "gpt2")},
                                           "org/Small-GGUF": {"small-Q4_K_M.gguf": gguf("b", "gpt2")},
                                           "org/Other-GGUF": {"other-Q4_K_M.gguf": gguf("c", "llama")}})
    try:
        path = write_config("")
        refused = cli("--config", path, "run", "org/Big-GGUF:Q4_K_M", "--draft", "org/Other-GGUF:Q4_K_M", "hi")
        assert refused.code == 2, refused.text
        assert "draft model other-Q4_K_M.gguf cannot draft for big-Q4_K_M.gguf" in refused.err
        assert not fake.containers and not fake.pods and refused.out == ""
        root = Path(fake.volume_path(MODELS))
        assert (root / "big-Q4_K_M.gguf").is_file() and (root / "other-Q4_K_M.gguf").is_file()  # both pulled
        pulled = cli("--config", path, "models", "pull", "org/Big-GGUF:Q4_K_M", "--draft", "org/Small-GGUF:Q4_K_M")
        assert pulled.code == 0 and 'draft_model = "small-Q4_K_M.gguf"' in pulled.err, pulled.text
        mixed = cli("--config", path, "models", "pull", "org/Big-GGUF:Q4_K_M", "--draft", "org/Other-GGUF:Q4_K_M",
                    "--force")
        assert mixed.code == 2 and "other-Q4_K_M.gguf cannot draft for big-Q4_K_M.gguf" in mixed.err, mixed.text
        cli("--config", path, "run", "org/Big-GGUF:Q4_K_M", "--draft", "org/Small-GGUF:Q4_K_M", "--timeout", "0.2",
            "hi")  # the in-memory runtime's container never answers: only what was created is looked at
        [spec] = [s for s in fake.specs.values() if s.name == "llamacpp"]
        assert spec.run.draft == "/models/small-Q4_K_M.gguf" and spec.run.model == "/models/big-Q4_K_M.gguf"
    finally:
        server.shutdown()


def test_a_draft_told_to_stay_off_the_gpus_is_counted_in_ram(tmp_path):
    from dataclasses import replace

    from airpods.models.gguf_header import read_model
    from airpods.orchestrate.memory_check import assess
    from airpods.plan.memory import facts_from_header
    from tests.unit.builders import spec

    header = read_model(_model(tmp_path, "draft.gguf", 2, 64))
    draft = facts_from_header(header.kv, header.tensor_bytes)
    base = ("--model", "/models/t.gguf", "--model-draft", "/models/draft.gguf", "--ctx-size", "1024", "-np", "1")
    placed = dict(gpu_layers=20, gpu_ram=3 << 20, gpu_ram_parts=(1 << 20, 1 << 20, 1 << 20), variant="cuda")
    on_gpu = spec("a", kind="llamacpp", command=base, **placed)
    for argv in (("-ngld", "0"), ("--device-draft", "none")):
        assert run_from_argv(base + argv).draft_on_cpu
    assert not run_from_argv(base + ("-ngld", "99")).draft_on_cpu
    kept = assess(on_gpu, draft, "t.gguf", budget_bytes=None, budget_why="", others=[], draft=draft)
    assert kept.estimate.total == (3 << 20) + OVERHEAD  # on the GPU with its target: nothing more in RAM
    off = replace(on_gpu, command=base + ("-ngld", "0"), llama=run_from_argv(base + ("-ngld", "0")))
    ram = assess(off, draft, "t.gguf", budget_bytes=None, budget_why="", others=[], draft=draft)
    assert ram.estimate.total == (3 << 20) + OVERHEAD + estimate(draft, off.run.draft_shape).total - OVERHEAD


def test_a_draft_path_that_leads_out_of_the_volume_is_never_read(fake):
    import dataclasses

    from airpods.orchestrate.preflight import check_drafts
    from airpods.plan.roles import draft_of
    from airpods.plan.router import RouterModelSpec, RouterSpec
    from airpods.plan.spec import VolumeSpec
    from tests.unit.builders import spec

    assert draft_of({"model_draft": "/etc/passwd"}) is None and draft_of({"-md": "/models/d.gguf"}) == "d.gguf"
    fake.ensure_volume(MODELS)
    _model(Path(fake.volume_path(MODELS)), "t.gguf", 2, 64)
    base = spec("r", kind="llamacpp", volumes=(VolumeSpec(MODELS, "/models", "ro"),), command=())
    out = RouterModelSpec("m", "t.gguf", args=(("model_draft", "/models/../../outside.gguf"),))
    with pytest.raises(UsageError) as err:
        check_drafts([dataclasses.replace(base, router=RouterSpec((out,)))], fake, MODELS)
    assert err.value.exit_code == 2 and "Traceback" not in err.value.message
