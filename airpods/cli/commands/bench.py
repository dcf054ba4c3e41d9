"""`airpods bench`: how fast a model really runs here, through its llama-server's own API, kept in a
history that checks the predictions (`models fit`, `models search`) against what was measured."""

from __future__ import annotations

import click

from airpods.cli import contract
from airpods.cli.application import Application, pass_app
from airpods.errors import UsageError


@click.command()
@click.argument("target", required=False, metavar="[SERVICE | MODEL]")
@click.option("--prompt-tokens", type=click.IntRange(1, 1 << 20), default=512, show_default=True,
              help="About this many prompt tokens per request (llama-server's count is recorded).")
@click.option("--gen-tokens", type=click.IntRange(1, 1 << 20), default=128, show_default=True,
              help="Tokens each answer is made to generate (the end of text is ignored).")
@click.option("--parallel", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Requests at once (generation tokens/s is then theirs together).")
@click.option("--repeat", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Rounds; the figures are their medians.")
@click.option("--keep", is_flag=True, help="Leave running what the bench started for it.")
@click.option("--history", "show_history", is_flag=True,
              help="List past runs (of MODEL, when given) with a chart of generation tokens/s; bench nothing.")
@click.option("--export", "export_as", type=click.Choice(["csv"]), help="With --history: the runs as CSV on stdout.")
@click.option("--json", "as_json", is_flag=True, help=f"A JSON object ({contract.BENCH.help()}); with --history, a "
                                                      "list of them.")
@pass_app
def bench(app: Application, target: str | None, prompt_tokens: int, gen_tokens: int, parallel: int, repeat: int,
          keep: bool, show_history: bool, export_as: str | None, as_json: bool) -> None:
    """Measure a model here: prompt and generation tokens/s and the first token's wait, from
    llama-server's own timings, with the memory its container used, recorded with what it ran on.

    \b
    TARGET is a llama.cpp service (its model), a model a router serves, or a model in the volume
    (or org/repo:QUANT, pulled as `airpods run` pulls it). What is not running is started for the
    bench and stopped after (unless --keep). Every run is appended to the history in airpods'
    data folder (bench/history.jsonl) with the model, quantization, image digest, the flags that
    matter (ctx, threads, GPU layers, cache types), CPU/GPU and airpods' version; --history shows
    them and flags a run more than 10 % slower than the previous run of the same model and
    settings, saying what changed. The predictions of `models fit` and `models search` use these
    runs (the bandwidth each achieved), and each run records what was predicted for it.

    \b
    Examples:
      airpods bench
      airpods bench SmolLM2-135M-Instruct.Q4_1.gguf --gen-tokens 256 --repeat 5
      airpods bench llamacpp --parallel 4 --json
      airpods bench --history
      airpods bench --history --export csv > runs.csv
    """
    if export_as and not show_history:
        raise UsageError("--export goes with --history", hint="airpods bench --history --export csv")
    if show_history:
        from airpods.cli.bench_ui import show

        show(app, target, as_json=as_json, export_as=export_as)
        return
    from airpods.cli.bench_ui import run_bench

    record = run_bench(app, target, prompt_tokens=prompt_tokens, gen_tokens=gen_tokens, parallel=parallel,
                       repeat=repeat, keep=keep, table=not as_json)
    if as_json:
        app.terminal.print_json(record, contract.BENCH)
