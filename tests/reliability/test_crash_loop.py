"""Scenario 3: a job that kills its own worker process is dead-lettered; the rest all run."""

from __future__ import annotations

import pytest

from pulsarjobs.worker.crashes import CRASHES_BEFORE_DEAD
from tests.integration.helpers import wait_until
from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.reliability


def test_crash_looping_job(scenario: Scenario) -> None:
    app, count = scenario.app, scenario.sized(300, 10_000)
    ordinary = [app.jobs["work"].call(5) for _ in range(count)]
    calls = [*ordinary[: count // 2], app.jobs["kills_its_process"].call(), *ordinary[count // 2 :]]
    ids = app.enqueue_many(calls)
    crasher = ids[count // 2]
    scenario.recorder.enqueued(ids)
    supervisor = scenario.start_worker("--processes", "2", "--concurrency", "4")

    def crasher_dead() -> bool:
        return crasher in scenario.dead_letters()

    wait_until(crasher_dead, 240, interval=2)
    wait_until(lambda: len(scenario.completed()) >= count, 240, interval=1)
    assert supervisor.poll() is None, scenario.logs()  # the supervisor keeps running
    reasons = scenario.dead_letters()
    made = scenario.check(reasons)
    assert made.lost == 0, made.lost_ids
    assert made.dead_lettered == 1, reasons  # only the culprit: no job beside it shares its fate
    reason = reasons[crasher]
    assert reason.startswith("killed its worker process "), reason
    assert int(reason.split()[-2]) >= CRASHES_BEFORE_DEAD, reason
