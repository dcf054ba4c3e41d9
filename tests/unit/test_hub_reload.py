"""The hub's reload, confirmed from HAProxy's own log: a signal sent before its master was ready
(lost, as measured with `podman kill` right after `podman run`) is sent again; one it heard is
not; a runtime that shows no output is signalled once. Fake runtime, fake clocks."""

from __future__ import annotations

import time

from airpods.runtime.fake import FakeRuntime
from airpods.stack.hub_reload import TRIES, reload

STARTED = 1_800_000_000.0  # when the hub's container started (epoch seconds); its lines are stamped so
STAMP = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(STARTED))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def hub(rt: FakeRuntime, heard_from: int, lines: list[str]) -> None:
    """A running hub whose master hears SIGUSR2 from the `heard_from`-th signal on."""
    rt.containers["hub-0"] = rt.containers.get("hub-0") or _running(rt)
    rt.log_lines["hub-0"] = lines
    real = rt.signal_container

    def signal(name: str, sig: str) -> None:
        real(name, sig)
        if len(rt.signals) >= heard_from:
            lines.append(f"{STAMP} [NOTICE]   (1) : Loading success.")
    rt.signal_container = signal  # type: ignore[method-assign]


def _running(rt: FakeRuntime):
    from airpods.runtime.port import ContainerState

    return ContainerState("hub-0", "running", started_at=STARTED)


def test_a_lost_signal_is_sent_again_until_the_log_shows_the_reload():
    rt, clock = FakeRuntime(), Clock()
    hub(rt, heard_from=2, lines=[f"{STAMP} [NOTICE]   (1) : New worker (7) forked",
                                 f"{STAMP} [NOTICE]   (1) : Loading success."])
    assert reload(rt, "hub-0", "SIGUSR2", started_at=STARTED, clock=clock, sleep=clock.sleep,
                  now=lambda: STARTED + 1)
    assert rt.signals == [("hub-0", "SIGUSR2")] * 2


def test_a_heard_signal_is_sent_once_and_the_first_load_is_awaited():
    rt, clock = FakeRuntime(), Clock()
    lines = [f"{STAMP} [NOTICE]   (1) : New worker (7) forked"]  # started, not loaded yet
    hub(rt, heard_from=1, lines=lines)
    real_logs = rt.logs

    def logs(name, **kw):  # its first load shows after a second
        if clock.t >= 1.0 and not any("Loading success" in line for line in lines):
            lines.insert(1, f"{STAMP} [NOTICE]   (1) : Loading success.")
        return real_logs(name, **kw)
    rt.logs = logs  # type: ignore[method-assign]
    assert reload(rt, "hub-0", "SIGUSR2", started_at=STARTED, clock=clock, sleep=clock.sleep,
                  now=lambda: STARTED + 1)
    assert rt.signals == [("hub-0", "SIGUSR2")] and clock.t >= 1.0  # not before its first load


def test_unheard_signals_give_up_and_an_earlier_run_does_not_count():
    rt, clock = FakeRuntime(), Clock()
    old = "2020-01-01T00:00:00Z [NOTICE]   (1) : Loading success."  # a run before this start
    hub(rt, heard_from=99, lines=[old, f"{STAMP} [NOTICE]   (1) : Loading success."])
    assert not reload(rt, "hub-0", "SIGUSR2", started_at=STARTED, clock=clock, sleep=clock.sleep,
                  now=lambda: STARTED + 1)
    assert len(rt.signals) == TRIES


def test_no_output_at_all_is_signalled_once():
    rt, clock = FakeRuntime(), Clock()
    hub(rt, heard_from=99, lines=[])
    assert reload(rt, "hub-0", "SIGUSR2", started_at=STARTED, clock=clock, sleep=clock.sleep,
                  now=lambda: STARTED + 60)
    assert rt.signals == [("hub-0", "SIGUSR2")] and clock.t == 0  # started long ago: no wait either
