"""Scenario 1: a soak — many jobs through four worker processes, nothing lost, none twice."""

from __future__ import annotations

import pytest

from tests.integration.helpers import wait_until
from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.reliability


def test_soak(scenario: Scenario) -> None:
    count = scenario.sized(10_000, 200_000)
    scenario.start_worker("--processes", "4", "--concurrency", "8", "--prefetch", "200")
    work = scenario.app.jobs["work"]
    one_by_one = [work.call(0) for _ in range(100)]
    ids = scenario.enqueue(one_by_one, batch=1)  # while the workers start and run
    ids += scenario.enqueue([work.call(0) for _ in range(count - len(one_by_one))])
    wait_until(lambda: len(scenario.completed()) >= count, 60 + count / 50, interval=1)
    scenario.stop_workers()
    made = scenario.check()
    assert made.jobs == count
    assert (made.lost, made.duplicates, made.dead_lettered) == (0, 0, 0), made.lost_ids
