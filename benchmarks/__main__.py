"""Benchmark runner: `python -m benchmarks [--quick] [--output FILE]`.

Every figure is reported with a baseline measured in the same run (absolute times on shared
2-core machines are noisy): min and median of interleaved runs, and the ratio of medians."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

from benchmarks.cli_latency import cli_latency
from benchmarks.common import ROOT, Env, Series, smollm2
from benchmarks.contention import contention
from benchmarks.draft import draft_speed
from benchmarks.first_contact import first_token
from benchmarks.gateway import gateway_overhead
from benchmarks.healing import recovery
from benchmarks.hosts import hub_overhead
from benchmarks.idle import idle_cost
from benchmarks.inference import host_binary, parity
from benchmarks.lifecycle import scaling, start_overhead
from benchmarks.memory import accuracy, header_speed
from benchmarks.metrics_cost import metrics_cost
from benchmarks.prediction import predictions
from benchmarks.router import swap_latency
from benchmarks.seams import before_after

TARGETS = {"airpods --help": 0.1, "airpods status": 0.4}
SECTIONS = ("scaling", "cli", "start", "run", "metrics", "healing", "idle", "inference", "contention", "memory",
            "router", "gateway", "seams", "hosts", "prediction", "draft")


def row(series: Series, baseline: Series | None, unit: str = "s", target: str = "") -> list[str]:
    fmt = (lambda v: f"{v * 1000:.0f} ms") if unit == "s" else (lambda v: f"{v:.1f}")
    ratio = f"{series.median / baseline.median:.2f}" if baseline else ""
    return [series.name, str(len(series.samples)), fmt(series.min), fmt(series.median),
            baseline.name if baseline else "", ratio, target]


def print_rows(head: list[str], rows: list[list[str]]) -> None:
    """A section's own table, as Markdown (docs/benchmarks.md takes it as printed)."""
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


def table(rows: list[list[str]]) -> str:
    head = ["measure", "n", "min", "median", "baseline (same run)", "ratio", "target"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few runs: keeps the runner working in CI")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json")
    parser.add_argument("--only", choices=SECTIONS, action="append",
                        help="run only these sections (repeatable); default: all")
    args = parser.parse_args()
    runs = 2 if args.quick else 10
    env = Env()
    results: dict = {"quick": args.quick, "machine": {"cpus": subprocess.run(
        ["nproc"], capture_output=True, text=True, check=False).stdout.strip(), "platform": platform.platform()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    rows: list[list[str]] = []
    sections = set(args.only or SECTIONS)
    all_series: list[Series] = []
    try:
        model = smollm2()
        env.prepare(model)
        if "scaling" in sections:
            scale = scaling(env, 1 if args.quick else 3, (1, 2) if args.quick else (1, 2, 4))
            rows += [row(s, scale[0]) for s in scale]
            all_series += scale
        if "cli" in sections:
            env.run("start", *[f"bench{i}" for i in range(1, 5)])  # status is measured with 4 services up
            cli = cli_latency(env, 3 if args.quick else 15)
            for name in ("airpods --help", "airpods --version", "airpods status"):
                target = f"<= {TARGETS[name] * 1000:.0f} ms" if name in TARGETS else ""
                rows.append(row(cli[name], cli["python -c pass"], target=target))
                rows.append(row(cli[name], cli["podman ps"]))
            all_series += cli.values()
        env.run("stop", "--remove")
        if "start" in sections:
            life = start_overhead(env, runs)
            rows.append(row(life["start"][0], life["start"][1], target="ratio <= 1.15"))
            rows.append(row(life["start"][2], life["start"][1]))  # podman-py alone: what is not airpods' own
            rows.append(row(life["start"][3], life["start"][1], target="ratio <= 1.05"))  # least privilege's cost
            rows.append(row(life["readiness"], None, target="<= 100 ms"))
            rows.append(row(life["stop"][0], life["stop"][1], target="<= 2 s"))
            all_series += [*life["start"], life["readiness"], *life["stop"]]
        if "run" in sections and host_binary().exists():
            first = first_token(env, model, 2 if args.quick else 10)
            rows.append(row(first["airpods"], first["bare"], target="ratio <= 1.2"))
            all_series += first.values()
        if "metrics" in sections:
            cost = metrics_cost(env, 1 if args.quick else 4)
            rows.append(row(cost["on"], cost["off"], unit="tok/s", target="ratio >= 0.99"))
            rows.append(row(cost["polled"], cost["off"], unit="tok/s"))
            all_series += cost.values()
        if "healing" in sections:
            heal = recovery(env, 1 if args.quick else 5)
            rows.append(row(heal["recovery"], heal["bound"], target="ratio <= 1.2"))
            all_series += heal.values()
        if "idle" in sections:
            idle = idle_cost(env, 10.0 if args.quick else 60.0, 1 if args.quick else 3)
            rows.append(row(idle["events"], idle["polling"], target="<= 60 ms (0.1 % of a core)"))
            rows.append(row(idle["alone"], idle["polling"]))
            rows.append(row(idle["router"], idle["polling"]))
            all_series += idle.values()
        if "inference" in sections and host_binary().exists():
            inf = parity(env, model, 2 if args.quick else 10, 16 if args.quick else 64)
            for what in ("generation", "prompt"):
                rows.append(row(inf[f"{what} container"], inf[f"{what} host"], unit="tok/s", target="ratio >= 0.97"))
            all_series += inf.values()
        elif "inference" in sections:
            print(f"skipping inference parity: no host llama-server at {host_binary()}")
        if "contention" in sections:
            quick = args.quick
            con = contention(env, 1 if quick else 5, (1, 2) if quick else (1, 2, 3, 4), (1, 2))
            for suffix in ("", " engine"):
                one = con[f"split 1{suffix}"]
                for key in [k for k in con if k.endswith(suffix) and (suffix or "engine" not in k)]:
                    target = "ratio >= 1.5" if key == f"split 2{suffix}" else ""
                    rows.append(row(con[key], None if con[key] is one else one, unit="tok/s", target=target))
                rows.append(row(one, con[f"off 1{suffix}"], unit="tok/s", target="ratio >= 0.9"))
                rows.append(row(con[f"split 2{suffix}"], con[f"off 2{suffix}"], unit="tok/s"))
            all_series += con.values()
        if "memory" in sections:
            ours, floor = header_speed(3 if args.quick else 15)
            rows.append(row(ours, floor, target="<= 50 ms"))
            all_series += [ours, floor]
            mem_rows, mem_series = accuracy(env, 1 if args.quick else 3)
            results["memory"] = mem_rows
            all_series += mem_series
            print_rows(["case", "estimate", "measured peak (median)", "ratio", "within ±15%", "page cache dropped"],
                       mem_rows)
        if "router" in sections and host_binary().exists():
            swaps = swap_latency(env, model, 2 if args.quick else 10)
            for what in ("swap first token", "warm first token"):
                rows.append(row(swaps[f"{what} airpods"], swaps[f"{what} host"], target="ratio <= 1.05"))
            all_series += swaps.values()
        if "gateway" in sections:
            gw = gateway_overhead(env, 3 if args.quick else 30)
            for what in ("chat", "first token"):
                rows.append(row(gw[f"{what} gateway"], gw[f"{what} direct"], target="ratio <= 1.05"))
            rows.append(row(gw["streams"], None, unit="count", target="= 32"))
            all_series += gw.values()
        if "seams" in sections:
            seams = before_after(env, 2 if args.quick else 10)
            for what in ("--help", "status", "start", "run"):
                if f"airpods {what} after" in seams:
                    rows.append(row(seams[f"airpods {what} after"], seams[f"airpods {what} before"],
                                    target="ratio <= 1.0 (no slower)"))
            all_series += seams.values()
        if "hosts" in sections:
            hub = hub_overhead(env, 3 if args.quick else 20, 1 if args.quick else 5)
            rows.append(row(hub["first token hub"], hub["first token remote gateway"], target="ratio <= 1.10"))
            rows.append(row(hub["tokens/s hub"], hub["tokens/s remote gateway"], unit="tok/s", target="ratio >= 0.97"))
            rows.append(row(hub["failover"], hub["bound"], target="ratio <= 1.0"))
            all_series += hub.values()
        if "prediction" in sections:
            pred_rows, pred_series = predictions(env, model, 1 if args.quick else 3)
            results["prediction"] = pred_rows
            all_series += pred_series
            print_rows(["model", "weights", "predicted gen tok/s (from the others)", "measured", "ratio",
                        "within ±25%", "memory estimate", "measured peak", "ratio", "within ±15%"], pred_rows)
        if "draft" in sections:
            draft_rows, draft_series = draft_speed(env, model, 1 if args.quick else 3)
            results["draft"] = draft_rows
            all_series += draft_series
            print_rows(["pair", "gen tok/s without", "with draft", "ratio", "drafted tokens accepted"], draft_rows)
        results["series"] = [s.to_json() for s in all_series if s.samples]
    finally:
        env.cleanup()
    results["table"] = rows
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))
    print(table(rows))
    print(f"\nJSON: {args.output}")


if __name__ == "__main__":
    main()
