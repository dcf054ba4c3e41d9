import pytest

from airpods.health.wait import Done, Pending, WaitTimeout, wait_for


class Clock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_backoff_is_capped_and_deadline_is_hard():
    clock = Clock()
    with pytest.raises(WaitTimeout) as err:
        wait_for(lambda: Pending("loading"), timeout=2.0, clock=clock, sleep=clock.sleep)
    assert max(clock.sleeps) <= 0.1 and clock.sleeps[0] == pytest.approx(0.01)
    assert clock.now == pytest.approx(102.0) and err.value.last.detail == "loading"


def test_done_returns_value_and_errors_fail_fast():
    calls = iter([Pending(), Pending(), Done(42)])
    clock = Clock()
    assert wait_for(lambda: next(calls), timeout=5, clock=clock, sleep=clock.sleep) == 42

    def boom():
        raise RuntimeError("container died")

    with pytest.raises(RuntimeError):
        wait_for(boom, timeout=5, clock=clock, sleep=clock.sleep)
