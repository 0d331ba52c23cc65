"""Scenario 2: workers killed with SIGKILL every 2-5 s while jobs of 10-500 ms run: nothing is
lost, and only what was in flight at a kill runs twice."""

from __future__ import annotations

import random
import time

import pytest

from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.reliability

CONCURRENCY = 16


def test_worker_kill_9(scenario: Scenario) -> None:
    count = scenario.sized(1_500, 100_000)
    work = scenario.app.jobs["work"]
    scenario.enqueue([work.call(random.randint(10, 500)) for _ in range(count)])
    options = ("--concurrency", str(CONCURRENCY))
    workers = [scenario.start_worker(*options) for _ in range(2)]
    kills = 0
    deadline = time.monotonic() + 120 + count / 10
    while len(scenario.completed()) < count:
        assert time.monotonic() < deadline, f"{len(scenario.completed())} of {count} ran"
        time.sleep(random.uniform(2, 5))
        victim = random.randrange(len(workers))
        workers[victim].kill()  # SIGKILL: no goodbye, its unacknowledged jobs must come back
        workers[victim].wait(30)
        workers[victim] = scenario.start_worker(*options)
        kills += 1
    scenario.stop_workers()
    made = scenario.check()
    print(f"{kills} kills")
    assert kills >= 2
    assert (made.lost, made.dead_lettered) == (0, 0), made.lost_ids
    # A kill runs again what the worker was running and what it ran but had not acknowledged
    # yet (acknowledgements leave in groups, every 100 ms): about one round of its jobs.
    assert made.duplicates <= kills * 2 * CONCURRENCY
