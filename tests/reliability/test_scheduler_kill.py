"""Scenario 8: the cron scheduler's leader killed with SIGKILL every few seconds, a new
scheduler started in its place each time, on a one-second line with the missed-tick policy
"all": every tick is enqueued exactly once, none is skipped.

The broker is not touched: this runs on the session's broker."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta

import pytest

from pulsarjobs.scheduling.cron import TICK_META
from pulsarjobs.scheduling.scheduler import SCHEDULER_META
from pulsarjobs.wire.envelope import Envelope
from tests.integration.helpers import start_pulsarjobs, wait_until
from tests.integration.test_scheduler import leader_pid, ticks_enqueued
from tests.reliability import report
from tests.reliability.conftest import APP, Scenario
from tests.reliability.recorder import RunRecord

pytestmark = pytest.mark.reliability

SCHEDULERS = 3
TICK = timedelta(seconds=1)


def test_scheduler_leader_kill_9(scenario: Scenario) -> None:
    seconds = scenario.sized(20, 300)
    for _ in range(SCHEDULERS):
        start_scheduler(scenario)
    wait_until(lambda: len(ticks_enqueued(scenario.app)) >= 3, 120, interval=0.5)
    began = time.monotonic()
    kills = 0
    while time.monotonic() < began + seconds:
        time.sleep(random.uniform(2, 5))
        leader = leader_pid(scenario.app)
        alive = {p.pid: p for p in scenario.workers if p.poll() is None}
        if leader not in alive:
            continue  # the last tick came from a leader killed before: not taken over yet
        alive[leader].kill()
        alive[leader].wait(30)
        kills += 1
        start_scheduler(scenario)
    time.sleep(3)  # the ticks after the last kill
    scenario.stop_workers()
    made = check(scenario, ticks_enqueued(scenario.app))
    print(f"{kills} leader kills in {seconds} s")
    assert kills >= seconds // 10
    assert (made.lost, made.duplicates) == (0, 0), f"missed ticks: {made.lost_ids}"


def start_scheduler(scenario: Scenario) -> None:
    log = scenario.directory / f"scheduler-{len(scenario.workers)}.log"
    process = start_pulsarjobs(scenario.env, log, "scheduler", APP, "--log-level", "warning")
    scenario.workers.append(process)  # stopped with the workers at the end, whatever happens


def check(scenario: Scenario, enqueued: list[Envelope]) -> report.Report:
    """Every second from the first tick to the last must be enqueued, once."""
    runs = [
        RunRecord(datetime.fromisoformat(e.meta[TICK_META]).isoformat(), 1,
                  int(e.meta[SCHEDULER_META].rsplit(":", 1)[1]), e.created_at.timestamp(), None)
        for e in enqueued
    ]  # fmt: skip
    seen = sorted(datetime.fromisoformat(run.job_id) for run in runs)
    expected = [seen[0] + TICK * n for n in range(int((seen[-1] - seen[0]) / TICK) + 1)]
    return report.check(
        scenario.name,
        scenario.size,
        [tick.isoformat() for tick in expected],
        runs,
        {},
        time.monotonic() - scenario.started,
    )
