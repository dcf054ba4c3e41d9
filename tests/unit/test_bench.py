"""The pure parts of `airpods bench` and the predictions: the history's drop flags (what is
compared, what is named as the change), its chart and CSV, the calibration from benches (a model
left out, the threads), the prediction's arithmetic, and the CLI's refusals and empty history."""

from __future__ import annotations

import json

import pytest

from airpods.bench import history
from airpods.plan.memory import ModelFacts, RunShape
from airpods.plan.speed import Machine, Sample, calibrate, kv_bytes, predict


def run(model: str, gen: float, threads: int = 2, image: str = "sha256:a", **more) -> dict:
    return {"at": 0.0, "model": model, "device": "cpu", "prompt_tokens": 512, "gen_tokens": 128, "parallel": 1,
            "generation_tokens_per_s": gen, "prompt_tokens_per_s": 300.0, "image_digest": image,
            "airpods_version": "0.1.0", "cpu": "x", "flags": {"ctx": 4096, "threads": threads, "gpu_layers": None,
                                                             "cache_k": "f16", "cache_v": "f16"}, **more}


def test_a_run_slower_than_the_previous_comparable_one_is_flagged_with_what_changed():
    runs = [run("a", 100), run("a", 95), run("b", 10), run("a", 80, threads=1), run("a", 70, image="sha256:b"),
            {**run("a", 10), "gen_tokens": 64}]  # other settings: compared with nothing
    slow = history.flagged(runs)
    assert set(slow) == {3, 4}  # 95 -> 80 (-15.8 %), 80 -> 70 (-12.5 %); 100 -> 95 is within 10 %
    assert slow[3]["drop_percent"] == 15.8 and slow[3]["changed"] == ["threads 2 -> 1"]
    assert slow[4]["changed"] == ["threads 1 -> 2", "image sha256:a -> sha256:b"] and slow[4]["previous"] == 80


def test_the_chart_and_the_csv():
    assert history.sparkline([10, 50, 100]) == "▂▅█" and history.sparkline([]) == ""
    text = history.as_csv([run("a", 100)])
    header, line = text.splitlines()
    assert header.split(",")[:3] == ["at", "model", "service"] and ",100," in line and ",2,4096," in line


def test_the_history_file_is_appended_and_a_bad_line_is_skipped(tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path)}
    path = history.append(env, run("a", 1))
    with path.open("a") as fh:
        fh.write("not json\n")
    history.append(env, run("b", 2))
    assert [r["model"] for r in history.load(env)] == ["a", "b"]
    assert [r["model"] for r in history.load(env, "b")] == ["b"]


FACTS = ModelFacts("llama", 100 << 20, 4, 8192, 576, 1536, 49152, (9,) * 4, (3,) * 4, 64, 64)


def test_the_calibration_takes_the_median_of_the_others_and_the_same_threads():
    samples = [Sample("a", 100, 0, 10.0, 50.0, threads=2), Sample("b", 200, 0, 6.0, 20.0, threads=2),
               Sample("c", 300, 0, 2.0, None, threads=1), Sample("d", 100, 0, 9.0, None, device="gpu:H100")]
    both = calibrate(samples, None, threads=2)
    assert both.bandwidth == 1100.0 and both.prompt_rate == 4500.0 and both.basis == "2 benches here"
    assert calibrate(samples, None, exclude="a", threads=2).bandwidth == 1200.0
    assert calibrate(samples, None, threads=4).bandwidth == 1000.0  # none at 4 threads: all of the CPU's
    probe = calibrate([], 5e9)
    assert probe.basis.startswith("this machine's memory bandwidth") and probe.bandwidth == 5e9
    assert calibrate(samples, None, device="gpu:A100").bandwidth is None  # nothing measured on that GPU


def test_the_prediction_is_bandwidth_over_the_bytes_a_token_reads():
    shape = RunShape(4096)
    kv = kv_bytes(FACTS, shape, 576)
    assert kv == 576 * 4 * 3 * (64 * 2 + 64 * 2)  # cells × layers × kv heads × (key + value) × f16
    p = predict(FACTS, shape, Machine(10e9, 5e12, "x"))
    assert p.generation == pytest.approx(10e9 / (FACTS.weights + kv))
    assert p.prompt == pytest.approx(5e12 / FACTS.weights)
    assert predict(FACTS, shape, Machine(None, None, "none")).generation is None


def test_the_cli_refuses_export_without_history_and_says_when_there_is_none(cli, write_config):
    path = write_config("")
    bad = cli("--config", path, "bench", "--export", "csv")
    assert bad.code == 2 and "--export goes with --history" in bad.err
    empty = cli("--config", path, "bench", "--history")
    assert empty.code == 0 and "no bench runs yet" in empty.err
    assert json.loads(cli("--config", path, "bench", "--history", "--json").out) == []


def test_a_healthy_start_records_what_each_model_holds_beside_its_estimate(rt, write_config, isolated):
    """stack/start.py's record (bench/loads.py): a llama.cpp service made healthy, with its memory
    now and the estimate it was started with; one not waited for, or another kind, is not."""
    import dataclasses

    from airpods.bench.loads import load, record
    from airpods.orchestrate.start import Outcome
    from airpods.runtime.port import ContainerState
    from airpods.stack import Stack

    stack = Stack(config_path=write_config(""))
    specs = stack.specs(create_secrets=False)
    specs["llamacpp"] = dataclasses.replace(specs["llamacpp"], memory_estimate=230 << 20)
    for name in ("llamacpp", "open-webui"):
        rt.containers[specs[name].container] = ContainerState(specs[name].container, "running")
        rt.usage[specs[name].container] = 120 << 20
    outcomes = [Outcome("llamacpp", "create", "running", None, 1.0, "healthy"),
                Outcome("open-webui", "create", "running", None, 1.0, "healthy"),
                Outcome("llamacpp-ui", "create", "running", None, None, "not waited")]
    assert record(stack.environ, rt, specs, outcomes) == 1
    [line] = load(stack.environ)
    assert line["service"] == "llamacpp" and line["memory_bytes"] == 120 << 20 and line["estimate_bytes"] == 230 << 20
