"""The CPU plan against fake topologies, the CPU and cgroup probes against fake trees, and the
plan as it reaches specs, containers and status (through config render and the fake runtime)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airpods.orchestrate.events import Silent
from airpods.orchestrate.start import start
from airpods.orchestrate.status import status
from airpods.plan.cpu_plan import CpuClaim, plan_cpu
from airpods.probes.cgroups import LimitSupport, limit_support
from airpods.probes.cpu import CpuProbeEnv, CpuTopology, format_cpuset, parse_cpuset, probe_cpu
from airpods.runtime.fake import FakeRuntime


def topo(n: int, quota: float | None = None, smt: bool = False) -> CpuTopology:
    cpus = tuple(range(n))
    # SMT like most x86 machines: cpu i and cpu i + n/2 are siblings on core i.
    cores = tuple((0, c % (n // 2)) for c in cpus) if smt else ()
    return CpuTopology(cpus, cores, quota)


def llama(n: int) -> list[CpuClaim]:
    return [CpuClaim(f"llm{i}") for i in range(n)]


def cpus_of(share) -> set[int]:
    return set(parse_cpuset(share.cpuset))


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 64])
def test_one_process_gets_every_cpu(cores):
    [share] = plan_cpu(topo(cores), llama(1)).values()
    assert cpus_of(share) == set(range(cores)) and share.threads == cores


@pytest.mark.parametrize(("cores", "procs"), [(2, 2), (3, 2), (8, 2), (8, 3), (64, 5), (64, 64), (3, 3)])
def test_shares_are_disjoint_cover_the_cpus_and_threads_match(cores, procs):
    shares = plan_cpu(topo(cores), llama(procs))
    sets = [cpus_of(s) for s in shares.values()]
    assert sum(len(s) for s in sets) == cores  # disjoint and complete
    assert set().union(*sets) == set(range(cores))
    assert all(s.threads == len(cpus_of(s)) for s in shares.values())
    assert max(len(s) for s in sets) - min(len(s) for s in sets) <= 1  # as even as possible


@pytest.mark.parametrize(("cores", "procs"), [(1, 2), (1, 4), (2, 3), (3, 8)])
def test_more_processes_than_cores_overlap_as_little_as_possible(cores, procs):
    shares = plan_cpu(topo(cores), llama(procs))
    load: dict[int, int] = {}
    for share in shares.values():
        assert share.threads == 1 and len(cpus_of(share)) == 1  # threads never exceed the share
        for cpu in cpus_of(share):
            load[cpu] = load.get(cpu, 0) + 1
    assert set(load) == set(range(cores))
    assert max(load.values()) == -(-procs // cores)  # ceil(procs / cores) per CPU at most
    assert all("overlap" in s.reason for s in shares.values())


def test_cgroup_quota_of_one_and_a_half_cpus_gives_one_cpu():
    shares = plan_cpu(topo(8, quota=1.5), llama(1))
    assert shares["llm0"].cpuset == "0" and shares["llm0"].threads == 1
    assert "quota 1.5" in shares["llm0"].reason
    two = plan_cpu(topo(8, quota=1.5), llama(2))
    assert [s.cpuset for s in two.values()] == ["0", "0"]


def test_quota_of_four_on_eight_cpus_splits_four():
    shares = plan_cpu(topo(8, quota=4.0), llama(2))
    assert [s.cpuset for s in shares.values()] == ["0-1", "2-3"]


def test_smt_siblings_stay_together_and_threads_count_cores():
    shares = plan_cpu(topo(8, smt=True), llama(2))  # cores 0..3, cpu c and c+4 siblings
    assert shares["llm0"].cpuset == "0-1,4-5" and shares["llm0"].threads == 2
    assert shares["llm1"].cpuset == "2-3,6-7" and shares["llm1"].threads == 2
    [alone] = plan_cpu(topo(8, smt=True), llama(1)).values()
    assert alone.threads == 4  # physical cores, like llama.cpp's own default


def test_user_setting_wins_and_is_not_counted():
    claims = [CpuClaim("a"), CpuClaim("b", user_set="services.b.command_args.threads"), CpuClaim("c")]
    shares = plan_cpu(topo(4), claims)
    assert shares["b"].cpuset is None and shares["b"].threads is None
    assert "services.b.command_args.threads" in shares["b"].reason
    assert [shares["a"].cpuset, shares["c"].cpuset] == ["0-1", "2-3"]


def test_pinned_only_claims_get_cpus_but_no_threads():
    shares = plan_cpu(topo(4), [CpuClaim("llm"), CpuClaim("ollama", threads=False)])
    assert shares["ollama"].cpuset == "2-3" and shares["ollama"].threads is None
    assert shares["llm"].threads == 2


def test_a_multi_process_claim_gets_a_share_per_process():
    shares = plan_cpu(topo(8), [CpuClaim("router", processes=2), CpuClaim("single")])
    assert shares["router"].cpuset == "0-5" and shares["router"].threads == 3
    assert shares["single"].cpuset == "6-7" and shares["single"].threads == 2


def test_cpuset_text_round_trips():
    assert format_cpuset([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert parse_cpuset("0-2,5,7-8") == [0, 1, 2, 5, 7, 8]
    with pytest.raises(ValueError):
        parse_cpuset("3-1")


# probes ---------------------------------------------------------------------------------------
def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_probe_reads_affinity_v2_quota_on_an_ancestor_and_core_ids(tmp_path):
    _write(tmp_path / "proc" / "cgroup", "0::/user.slice/app.scope\n")
    _write(tmp_path / "cg" / "cgroup.controllers", "cpu memory\n")
    _write(tmp_path / "cg" / "user.slice" / "cpu.max", "150000 100000\n")
    _write(tmp_path / "cg" / "user.slice" / "app.scope" / "cpu.max", "max 100000\n")
    for cpu, core in ((2, 0), (3, 1)):
        _write(tmp_path / "sys" / f"cpu{cpu}" / "topology" / "physical_package_id", "0\n")
        _write(tmp_path / "sys" / f"cpu{cpu}" / "topology" / "core_id", f"{core}\n")
    found = probe_cpu(CpuProbeEnv(tmp_path / "proc", tmp_path / "cg", tmp_path / "sys", lambda: {3, 2}))
    assert found.cpus == (2, 3) and found.quota == 1.5 and found.cores == ((0, 0), (0, 1))


def test_probe_reads_v1_quota(tmp_path):
    _write(tmp_path / "proc" / "cgroup", "2:cpuacct:/\n1:cpu,cpuacct:/job\n0::/\n")
    _write(tmp_path / "cg" / "cpu,cpuacct" / "job" / "cpu.cfs_quota_us", "200000\n")
    _write(tmp_path / "cg" / "cpu,cpuacct" / "job" / "cpu.cfs_period_us", "100000\n")
    _write(tmp_path / "cg" / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    found = probe_cpu(CpuProbeEnv(tmp_path / "proc", tmp_path / "cg", tmp_path / "sys", lambda: range(4)))
    assert found.quota == 2.0 and found.cores == () and found.cpus == (0, 1, 2, 3)


def test_limit_support_rootful_rootless_v1_and_v2(tmp_path):
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    assert limit_support(0, v1).controllers == {"cpuset", "memory", "cpu"}
    rootless_v1 = limit_support(1000, v1)
    assert rootless_v1.rootless and rootless_v1.controllers == frozenset()
    assert "not enforced" in rootless_v1.describe() and "cgroups v1" in rootless_v1.describe()
    v2 = tmp_path / "v2"
    _write(v2 / "cgroup.controllers", "cpuset cpu io memory pids\n")
    _write(v2 / "user.slice" / "user-1000.slice" / "user@1000.service" / "cgroup.controllers", "cpu memory pids\n")
    assert limit_support(1000, v2).controllers == {"cpu", "memory"}


# the plan in specs, containers and status -------------------------------------------------------
TWO = """
[services.llamacpp-ui]
enabled = true
[services.open-webui]
enabled = true
"""


def render(cli, path, service, monkeypatch, cpus="0-3"):
    monkeypatch.setenv("AIRPODS_CPU_AFFINITY", cpus)
    result = cli("--config", path, "config", "render", service, "--json")
    assert result.code == 0, result.text
    return json.loads(result.out)


def flag(cmd, name):
    return cmd[cmd.index(name) + 1] if name in cmd else None


def test_two_llamacpp_services_render_disjoint_cpusets_and_threads(cli, write_config, monkeypatch):
    path = write_config(TWO)
    a, b = render(cli, path, "llamacpp", monkeypatch), render(cli, path, "llamacpp-ui", monkeypatch)
    assert (a["cpuset"], a["threads"], b["cpuset"], b["threads"]) == ("0-1", 2, "2-3", 2)
    assert flag(a["command"], "--threads") == "2" and flag(a["command"], "--threads-batch") == "2"
    assert "2 llama.cpp processes on 4 usable CPUs" in a["cpu_plan"]
    webui = render(cli, path, "open-webui", monkeypatch)
    assert webui["cpuset"] is None and webui["threads"] is None


def test_user_threads_are_kept_as_written(cli, write_config, monkeypatch):
    path = write_config(TWO + "[services.llamacpp.command_args]\nthreads = 3\n")
    a, b = render(cli, path, "llamacpp", monkeypatch), render(cli, path, "llamacpp-ui", monkeypatch)
    assert flag(a["command"], "--threads") == "3" and "--threads-batch" not in a["command"]
    assert a["cpuset"] is None and a["threads"] == 3 and "command_args.threads" in a["cpu_plan"]
    assert b["cpuset"] == "0-3" and b["threads"] == 4  # the others split what is left: all of it


def test_resources_cpuset_and_cpu_plan_off(cli, write_config, monkeypatch):
    pinned = write_config(TWO + '[services.llamacpp.resources]\ncpuset = "3"\n')
    a = render(cli, pinned, "llamacpp", monkeypatch)
    assert a["cpuset"] == "3" and "--threads" not in a["command"]
    off = write_config(TWO + '[runtime]\ncpu_plan = "off"\n')
    b = render(cli, off, "llamacpp", monkeypatch)
    assert b["cpuset"] is None and "--threads" not in b["command"] and "cpu_plan" in b["cpu_plan"]


def test_ollama_next_to_llamacpp_gets_its_own_cpus(cli, write_config, monkeypatch):
    path = write_config("[services.ollama]\nenabled = true\n")
    a, o = render(cli, path, "llamacpp", monkeypatch), render(cli, path, "ollama", monkeypatch)
    assert (a["cpuset"], o["cpuset"], o["threads"]) == ("0-1", "2-3", None)


def test_bad_cpuset_is_a_config_error(cli, write_config):
    result = cli("--config", write_config('[services.llamacpp.resources]\ncpuset = "0-x"\n'), "config", "validate")
    assert result.code == 2 and "services.llamacpp.resources.cpuset" in result.err


def _specs(cli, path, monkeypatch, cpus="0-3"):
    from airpods.stack import Stack

    monkeypatch.setenv("AIRPODS_CPU_AFFINITY", cpus)
    return Stack(config_path=path).specs()


def test_starting_a_second_service_leaves_the_first_untouched(write_config, cli, monkeypatch):
    specs = _specs(cli, write_config(TWO), monkeypatch)
    rt = FakeRuntime(images={s.image for s in specs.values()}, volumes={"airpods_llamacpp_models": {}})
    start(rt, specs, ["llamacpp"], Silent(), network="airpods", models_volume="m", wait=False)
    first = rt.containers[specs["llamacpp"].container]
    outcomes = start(rt, specs, ["llamacpp", "llamacpp-ui"], Silent(), network="airpods", models_volume="m",
                     wait=False)
    assert [o.action for o in outcomes] == ["noop", "create"] and rt.containers[specs["llamacpp"].container] is first
    assert rt.cpusets == {specs["llamacpp"].container: "0-1", specs["llamacpp-ui"].container: "2-3"}


def test_engine_that_cannot_pin_gets_threads_only_and_status_says_so(write_config, cli, monkeypatch):
    specs = _specs(cli, write_config(TWO), monkeypatch)
    rt = FakeRuntime(images={s.image for s in specs.values()}, volumes={"airpods_llamacpp_models": {}},
                     limits=LimitSupport(True, 1, frozenset()))
    start(rt, specs, ["llamacpp"], Silent(), network="airpods", models_volume="m", wait=False)
    assert rt.cpusets == {specs["llamacpp"].container: None}
    assert "--threads" in rt.specs[specs["llamacpp"].container].command
    [row] = status(rt, [specs["llamacpp"]])
    assert row.cpuset_enforced is False and "not enforced" in row.cpu_plan and row.threads == 2


def test_llamacpp_health_is_gated_on_slash_health(cli, write_config):
    data = json.loads(cli("--config", write_config("[services.llamacpp-ui]\nenabled = true\n"),
                          "config", "render", "llamacpp-ui", "--json").out)
    assert data["health"]["path"] == "/"
    assert data["health"]["urls"] == ["http://127.0.0.1:8081/health", "http://127.0.0.1:8081/"]
