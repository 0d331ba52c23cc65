"""Scenario 5: the broker paused with SIGSTOP (a stalled VM, a long GC pause) while producers
enqueue and a worker runs, then resumed: nothing is lost, jobs flow again, the worker lives."""

from __future__ import annotations

import time

import pytest

from tests.integration.helpers import wait_until
from tests.reliability.conftest import Scenario
from tests.reliability.producer import BackgroundProducer

pytestmark = pytest.mark.reliability

WINDOW = 3.0  # seconds over which throughput is measured, before and after the pause


def test_broker_paused(own_scenario: Scenario) -> None:
    scenario = own_scenario
    seconds = scenario.sized(10, 30)
    worker = scenario.start_worker("--concurrency", "16")
    with BackgroundProducer(scenario) as producer:
        wait_until(lambda: len(scenario.completed()) >= 200, 120, interval=0.2)
        before = completed_per_second(scenario)
        with scenario.broker.paused():
            paused_at = len(scenario.completed())
            time.sleep(seconds)
            during = len(scenario.completed()) - paused_at
        resumed_at = len(scenario.completed())
        wait_until(lambda: len(scenario.completed()) >= resumed_at + 200, 120, interval=0.2)
        after = completed_per_second(scenario)
    assert worker.poll() is None, "the worker died while the broker was paused"
    count = len(scenario.enqueued())
    wait_until(lambda: len(scenario.completed()) >= count, 120 + count / 20, interval=1)
    assert worker.poll() is None, "the worker died after the broker was paused"
    scenario.stop_workers()
    made = scenario.check()
    print(f"paused {seconds} s: {before:.0f} jobs/s before, {during} jobs completed while "
          f"paused, {after:.0f} jobs/s after; enqueue raised {producer.raised} times")  # fmt: skip
    assert producer.unexpected == []
    assert (made.lost, made.dead_lettered) == (0, 0), made.lost_ids


def completed_per_second(scenario: Scenario) -> float:
    first = len(scenario.completed())
    time.sleep(WINDOW)
    return (len(scenario.completed()) - first) / WINDOW
