"""Scenario 4: the broker killed with SIGKILL and restarted, again and again, while producers
enqueue one by one and in groups and a worker runs: nothing whose enqueue returned is lost."""

from __future__ import annotations

import pytest

from tests.integration.helpers import wait_until
from tests.reliability.conftest import Scenario
from tests.reliability.producer import BackgroundProducer

pytestmark = pytest.mark.reliability


def test_broker_kill_9(own_scenario: Scenario) -> None:
    scenario = own_scenario
    kills = scenario.sized(2, 5)
    worker = scenario.start_worker("--concurrency", "16")
    with BackgroundProducer(scenario) as producer:
        for _ in range(kills):
            producer.wait_for(200)
            scenario.broker.kill_and_restart()
        producer.wait_for(200)  # it gets through after the last restart
    assert worker.poll() is None, "the worker died with the broker"
    count = len(scenario.enqueued())
    wait_until(lambda: len(scenario.completed()) >= count, 120 + count / 20, interval=1)
    scenario.stop_workers()
    made = scenario.check()
    print(f"{kills} broker kills; enqueue returned for {producer.returned:,} jobs, "
          f"raised {producer.raised} times: {sorted(set(producer.errors))[:3]}")  # fmt: skip
    assert producer.unexpected == []
    assert (made.lost, made.dead_lettered) == (0, 0), made.lost_ids
