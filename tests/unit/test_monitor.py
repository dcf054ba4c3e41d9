"""Seeing what the machine does, without a model server: llama-server's /metrics and /slots as the
real one answers them (tests/data, written by scripts/record-llama-payloads.py), the rates `top`
computes from two readings, `top --once` over stopped and crashed services, the gateway's access
log, use per person paired with llama-server's own log, metrics on by default, and /metrics and
/slots kept out of the gateway."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

from airpods.monitor.llama_sample import Reading, activity, generated
from airpods.monitor.prom_text import parse, values
from tests.unit.builders import LLAMA, stack

DATA = Path(__file__).resolve().parents[1] / "data"


def reading(at: float, metrics: str, slots: str) -> Reading:
    return Reading.of(at, values((DATA / metrics).read_text()), json.loads((DATA / slots).read_text()))


def test_the_recorded_metrics_parse_as_llama_server_wrote_them():
    busy = values((DATA / "llama-metrics-busy.txt").read_text())
    assert busy["llamacpp:requests_processing"] == 1 and busy["llamacpp:requests_deferred"] == 0
    assert "llamacpp:tokens_predicted_total" in busy and "llamacpp:prompt_tokens_total" in busy
    labelled = parse('caddy_http_requests_total{handler="reverse_proxy",server="srv0"} 42\n# HELP x\n')
    assert labelled == [("caddy_http_requests_total", {"handler": "reverse_proxy", "server": "srv0"}, 42.0)]


def test_a_long_generation_shows_tokens_per_second_from_its_slot_before_the_counter_moves():
    idle = reading(0.0, "llama-metrics-idle.txt", "llama-slots-idle.json")
    busy = reading(2.0, "llama-metrics-busy.txt", "llama-slots-busy.json")
    decoded = busy.busy()
    assert len(decoded) == 1 and next(iter(decoded.values())) > 0
    a = activity(idle, busy)
    assert a.processing == 1 and a.slots_busy == 1 and a.slots_total == 2
    assert a.generation_tps == next(iter(decoded.values())) / 2.0  # the counter has not moved yet
    [slot] = a.contexts
    raw = next(s for s in json.loads((DATA / "llama-slots-busy.json").read_text()) if s["is_processing"])
    assert slot["tokens"] == raw["n_prompt_tokens"] + raw["next_token"][0]["n_decoded"]
    assert a.kv_percent == 100.0 * slot["tokens"] / sum(s["n_ctx"] for s in busy.slots)


def test_a_request_that_ends_between_readings_is_not_counted_twice():
    busy = reading(0.0, "llama-metrics-busy.txt", "llama-slots-busy.json")
    after = reading(4.0, "llama-metrics-after.txt", "llama-slots-idle.json")
    ended_with = after.metrics["tokens_predicted_total"] - busy.metrics["tokens_predicted_total"]
    already = next(iter(busy.busy().values()))
    assert generated(busy, after) == ended_with - already
    a = activity(busy, after)
    assert a.processing == 0 and a.slots_busy == 0 and a.kv_used == 0
    slots = copy.deepcopy(busy.slots)
    restarted = replace(after, metrics={**after.metrics, "tokens_predicted_total": 5.0}, slots=slots)
    assert generated(busy, restarted) >= 0  # a restarted server's counters begin again: never negative


def test_top_once_shows_a_stopped_and_a_crashed_service_and_exits_0(rt, cli, write_config):
    path = stack(write_config, extra=f'[services.llamacpp-3]\nkind = "llamacpp"\nimage = "{LLAMA}"\n'
                                    'default_model = "SmolLM2-135M-Instruct.Q4_1.gguf"\n'
                                    'ports = [{ container = 8080 }]\n')
    assert cli("--config", path, "start", "llamacpp-2", "llamacpp-3", "--no-wait").code == 0
    for name, code in (("lab-llamacpp-2-0", 0), ("lab-llamacpp-3-0", 139)):
        rt.containers[name] = replace(rt.containers[name], status="exited", exit_code=code)
    result = cli("--config", path, "top", "--once", "llamacpp-2", "llamacpp-3", "--interval", "0.2")
    assert result.code == 0, result.text
    lines = {line.split()[0]: line for line in result.out.splitlines()[1:]}
    assert "stopped" in lines["llamacpp-2"] and "exited" in lines["llamacpp-3"] and "code 139" in lines["llamacpp-3"]
    rows = {r["service"]: r for r in json.loads(cli("--config", path, "top", "--json", "llamacpp-2", "llamacpp-3",
                                                    "--interval", "0.2").out)}
    assert rows["llamacpp-3"]["state"] == "exited" and rows["llamacpp-3"]["why"] == "exited with code 139"
    assert rows["llamacpp-2"]["generation_tokens_per_s"] is None and rows["llamacpp-2"]["vram"] == {}
    bad = cli("--config", path, "top", "open-webui", "--once")
    assert bad.code == 2 and "none of them" in bad.err


def test_gateway_figures_count_requests_and_the_people_of_the_last_minute():
    from airpods.monitor.top import gateway_figures

    def line(ts, who, status=200):
        return json.dumps({"msg": "handled request", "ts": ts, "user_id": who, "status": status,
                           "request": {"method": "POST", "uri": "/v1/chat/completions"}, "duration": 0.1})

    lines = [line(1000.0, "old"), line(1055.0, "alice"), line(1059.5, "bob"), line(1059.8, "", 401), "not json"]
    figures = gateway_figures(lines, now=1060.0, interval=1.0)
    assert figures == {"requests_per_s": 2.0, "requests_last_minute": 3, "people_active": ["alice", "bob"]}


def _llama_log(start: str, tasks: list[tuple[float, float, int, int]], port: str = "") -> list[str]:
    """Lines as Podman's API gives them (whole seconds) with llama-server's own clock."""
    from datetime import datetime, timedelta

    t0 = datetime.fromisoformat(start)
    prefix = f"[{port}] " if port else ""

    def at(off: float, text: str) -> str:
        stamp = (t0 + timedelta(seconds=off)).strftime("%Y-%m-%dT%H:%M:%SZ")
        m, s = divmod(off, 60)
        return f"{stamp} {prefix}{int(m)}.{int(s):02d}.{int(off * 1000) % 1000:03d}.{int(off * 1e6) % 1000:03d} {text}"

    out = [at(0.001 + i * 0.137, "I srv load_model: warming up") for i in range(12)]
    for n, (begin, end, prompt, gen) in enumerate(tasks):
        out += [at(begin, f"I slot launch_slot_: id  0 | task {n * 9} | processing task"),
                at(end, f"I slot print_timing: id  0 | task {n * 9} |        eval time =  10.0 ms /  {gen} tokens"),
                at(end, f"I slot      release: id  0 | task {n * 9} | stop processing: n_tokens = {prompt + gen}")]
    return out


def test_usage_pairs_each_persons_request_with_the_task_that_ran_within_it(tmp_path):
    from datetime import datetime

    from airpods.gateway.usage import Ledger, pair, requests, summary, tasks

    start = datetime.fromisoformat("2026-12-03T10:00:00.400000+00:00").timestamp()
    log = _llama_log("2026-12-03T10:00:00.400000+00:00", [(5.10, 5.30, 30, 8), (5.32, 5.39, 31, 6), (7.0, 7.5, 40, 20)])
    served = tasks(log, "smol.gguf", started_at=start)
    assert [(round(t.start - start, 2), t.prompt, t.completion) for t in served] == [
        (5.1, 30, 8), (5.32, 31, 6), (7.0, 40, 20)]

    def access(ts, who, dur, status=200, method="POST"):
        return json.dumps({"msg": "handled request", "ts": start + ts, "user_id": who, "status": status,
                           "duration": dur, "request": {"method": method, "uri": "/v1/chat/completions"}})

    lines = [access(5.31, "alice", 0.22), access(5.40, "bob", 0.07), access(5.5, "bob", 0.01, method="GET"),
             access(6.0, "carol", 0.01, status=401), access(7.52, "alice", 0.55)]
    uses = requests(lines, {"/v1": "llamacpp", "/": "open-webui"})
    for u in uses:
        u.model = "smol.gguf"
    pair(uses, served)
    ledger = Ledger(tmp_path / "gateway" / "usage.jsonl")
    ledger.add(uses)
    everything = ledger.add(uses)  # read again: nothing twice
    assert len(everything) == 4 and (tmp_path / "gateway" / "usage.jsonl").stat().st_mode & 0o777 == 0o600
    rows = {r["person"]: r for r in summary(everything)}
    assert rows["alice"] | {"last": 0} == {"person": "alice", "model": "smol.gguf", "service": "llamacpp",
                                           "requests": 2, "errors": 0, "seconds": 0.77, "prompt_tokens": 70,
                                           "completion_tokens": 28, "unmatched": 0, "last": 0}
    assert (rows["bob"]["prompt_tokens"], rows["bob"]["completion_tokens"]) == (31, 6)
    assert rows["carol"]["errors"] == 1 and rows["carol"]["prompt_tokens"] == 0
    assert [r["person"] for r in summary(everything, person="bob")] == ["bob"]
    assert summary(everything, since=start + 7.0)[0]["requests"] == 1


def test_a_routers_children_get_the_model_that_was_spawned_on_their_port():
    from airpods.gateway.usage import tasks

    router = ["2026-12-03T10:00:00Z 0.00.005.000 I srv load: spawning server instance with name=qwen on port 4100"]
    child = _llama_log("2026-12-03T10:00:00.105000+00:00", [(3.0, 3.4, 12, 5)], port="4100")
    [task] = tasks(router + child)
    assert task.model == "qwen" and task.completion == 5 and task.prompt == 12


def test_keys_usage_reads_the_logs_keeps_history_and_refuses_a_bad_age(rt, cli, write_config, isolated):
    path = stack(write_config)
    assert cli("--config", path, "keys", "add", "alice").code == 0
    assert cli("--config", path, "start", "gateway", "--no-wait").code == 0
    started = rt.containers["lab-llamacpp-2-0"].started_at
    rt.containers["lab-llamacpp-2-0"] = replace(rt.containers["lab-llamacpp-2-0"], started_at=started)
    from datetime import datetime, timezone

    iso = datetime.fromtimestamp(started, timezone.utc).isoformat()
    rt.log_lines["lab-llamacpp-2-0"] = _llama_log(iso, [(2.0, 2.5, 20, 10)])
    rt.log_lines["lab-gateway-0"] = [json.dumps({"msg": "handled request", "ts": started + 2.55, "user_id": "alice",
                                                 "status": 200, "duration": 0.6, "request": {
                                                     "method": "POST", "uri": "/llamacpp-2/v1/chat/completions"}})]
    [row] = json.loads(cli("--config", path, "keys", "usage", "--json").out)
    assert (row["person"], row["requests"], row["prompt_tokens"], row["completion_tokens"]) == ("alice", 1, 20, 10)
    assert row["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    rt.log_lines["lab-gateway-0"] = []  # the gateway was recreated: its log is gone
    assert cli("--config", path, "keys", "revoke", "alice").code == 0
    [kept] = json.loads(cli("--config", path, "keys", "usage", "alice", "--json", "--since", "all").out)
    assert kept["requests"] == 1 and kept["completion_tokens"] == 10
    bad = cli("--config", path, "keys", "usage", "--since", "yesterday")
    assert bad.code == 2 and "--since" in bad.err


def test_metrics_are_on_by_default_and_the_users_choice_wins(rt, cli, write_config):
    def argv(extra: str) -> list[str]:  # `extra` lands in [services.llamacpp-2]
        result = cli("--config", stack(write_config, extra=extra), "config", "render", "llamacpp-2", "--json")
        assert result.code == 0, result.text
        return json.loads(result.out)["command"]

    assert "--metrics" in argv("")
    assert "--metrics" not in argv("metrics = false\n")
    assert "--metrics" not in argv("[services.llamacpp-2.command_args]\nmetrics = false\n")  # its own flag wins


def test_the_gateway_never_serves_metrics_or_slots(rt, cli, write_config, isolated):
    from airpods.plan.gateway import internal_paths

    assert cli("--config", stack(write_config), "start", "gateway", "--no-wait").code == 0
    caddyfile = (isolated / "data" / "airpods" / "gateway" / "lab" / "etc" / "Caddyfile").read_text()
    for path in internal_paths(["llamacpp", "llamacpp-2"]):
        assert f"handle {path} {{" in caddyfile
    assert "/llamacpp-2/v1/slots*" in internal_paths(["llamacpp-2"]) and "/metrics*" in internal_paths([])


def test_a_unified_cache_is_counted_once_not_once_per_slot():
    """Issue 40, item 10: four slots sharing one 4,096-cell cache each report n_ctx 4096; top
    added them up (1,479 tokens shown as 9 % of 16,384)."""
    slots = [{"id": i, "n_ctx": 4096, "is_processing": i == 0, "n_prompt_tokens": 1479 if i == 0 else 0}
             for i in range(4)]
    reading = Reading.of(1.0, {}, slots)
    assert round(activity(reading, reading, unified=True).kv_percent, 1) == round(100 * 1479 / 4096, 1)
    split = [{**s, "n_ctx": 1024} for s in slots]  # a split cache: each slot its share
    assert activity(Reading.of(1.0, {}, split), Reading.of(1.0, {}, split)).kv_total == 4096


def test_the_slots_and_kv_layout_are_said_to_llama_server_as_the_plan_assumes(cli, write_config):
    """Issue 40, item 9: no --parallel was rendered, so llama-server ran 4 slots in one unified
    cache while the plan counted one slot of --ctx-size."""
    from airpods.stack import Stack

    spec = Stack(config_path=write_config("")).specs(create_secrets=False)["llamacpp"]
    argv = list(spec.command)
    assert argv[argv.index("--parallel") + 1] == "1" and "--no-kv-unified" in argv
    assert spec.llama.shape.parallel == 1 and not spec.llama.shape.kv_unified
    assert spec.llama.shape.ctx_per_slot == spec.llama.shape.ctx
    team = write_config('[services.llamacpp.command_args]\nparallel = 4\nctx_size = 16384\nkv_unified = true\n')
    spec = Stack(config_path=team).specs(create_secrets=False)["llamacpp"]
    argv = list(spec.command)
    assert argv[argv.index("--parallel") + 1] == "4" and "--kv-unified" in argv and "--no-kv-unified" not in argv
    assert spec.llama.shape.kv_unified and spec.llama.shape.ctx_per_slot == 16384
    raw = write_config('[services.llamacpp]\nargs = ["-np", "2"]\n')
    spec = Stack(config_path=raw).specs(create_secrets=False)["llamacpp"]
    assert "--parallel" not in spec.command and spec.llama.shape.parallel == 2
