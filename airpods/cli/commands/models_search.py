"""`airpods models search`: which model to run here. The hub's GGUF repos for a query, each with
its quantizations: size, whether it fits this machine and at what context, and how fast it would
run here (plan/speed.py, from this machine's benches or its measured bandwidth); headers only."""

from __future__ import annotations

import click

from airpods.cli import contract
from airpods.cli.application import Application, pass_app
from airpods.cli.models_ui import service_option, size_text
from airpods.models.hub_search import SORTS


@click.command("search")
@click.argument("query")
@click.option("--limit", type=click.IntRange(1, 100), default=10, show_default=True, help="Repos to show.")
@click.option("--sort", type=click.Choice(list(SORTS)), default="downloads", show_default=True,
              help="The hub's order of the repos found.")
@click.option("--json", "as_json", is_flag=True, help=f"A JSON list, a repo each ({contract.MODELS_SEARCH.help()}).")
@service_option
@pass_app
def search_cmd(app: Application, query: str, limit: int, sort: str, as_json: bool, service: str | None) -> None:
    """Search the hub's GGUF repos for QUERY; for each, every quantization with its size, whether
    it fits here (memory budget, at the settings of the service it would run in), the largest
    context that fits, and the generation and prompt tokens/s predicted here.

    \b
    Nothing but headers is read: the repos' listings and one GGUF header per repo (ranged reads;
    its quantizations share the architecture and differ by their size), in parallel, kept in the
    cache for the next search. The best quantization of each repo that fits comes first (the
    largest that fits), with the `airpods run` line that runs it. Vision repos (with an mmproj) and
    split models are marked. The predictions come from this machine's benches (`airpods bench`)
    where there are some, else from the memory bandwidth `airpods doctor` measured; with neither,
    none is shown. Honours HF_ENDPOINT (a mirror) and HF_TOKEN (gated repos). On a GPU machine
    the fit is the memory budget's; `airpods models pull REPO --list` runs the GPU plan per file.

    \b
    Examples:
      airpods models search qwen2.5 7b instruct
      airpods models search smollm2 --sort likes --limit 5
      airpods models search llama --json | jq '.[] | {repo, best: .best.quant}'
    """
    from airpods.cli.search_ui import search_repos

    repos = search_repos(app, query, sort=sort, limit=limit, service=service)
    if as_json:
        app.terminal.print_json(repos, contract.MODELS_SEARCH)
        return
    if not repos:
        app.terminal.info(f"no GGUF repo on the hub matches {query!r}")
        return
    rows = []
    for r in repos:
        marks = ", ".join(m for m, on in (("vision", r["vision"]), ("split", r["split"])) if on)
        if r["error"]:
            rows.append([r["repo"], "-", "-", "-", "-", "-", "-", r["error"]])
            continue
        for i, q in enumerate(r["quants"]):
            rows.append([r["repo"] if i == 0 else "", q["quant"] + (" *" if q["quant"] == (r["best"] or {}).get(
                "quant") else ""), size_text(q["size"]), {True: "yes", False: "no", None: "?"}[q["fits"]],
                q["max_ctx"] or "-", _rate(q["generation_tokens_per_s"]), _rate(q["prompt_tokens_per_s"]),
                marks if i == 0 else ""])
    app.terminal.table(["REPO", "QUANT", "SIZE", "FITS", "MAX CTX", "GEN T/S", "PROMPT T/S", "NOTES"], rows,
                       title=f"{query!r} on the hub: * the best that fits here")
    basis = next((r["prediction_basis"] for r in repos if r.get("prediction_basis")), None)
    if basis:
        app.terminal.detail(f"tokens/s predicted from {basis}")
    if repos[0].get("estimates_here"):
        app.terminal.detail(repos[0]["estimates_here"])
    for r in repos:
        if r["run"]:
            app.terminal.info(f"run it: {r['run']}")


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"
