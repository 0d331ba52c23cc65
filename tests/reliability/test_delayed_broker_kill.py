"""Scenario 7: delayed jobs across broker kill -9 and restarts: every one runs, none before its
`run_at`. Pulsar has delivered delayed messages at once after a restart (apache/pulsar#22716);
the worker's guard puts such a job back until it is due, and this scenario counts how often."""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from pulsarjobs import JobCall
from tests.integration.helpers import wait_until
from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.reliability

LEAD = 5.0  # the soonest a job is due after its enqueue, in seconds
GROUP = 0.1  # jobs due within the same 100 ms go in one enqueue call


def test_delayed_jobs_across_broker_kills(own_scenario: Scenario) -> None:
    scenario = own_scenario
    count = scenario.sized(2_000, 100_000)
    span = scenario.sized(25, 600)  # the last job is due this many seconds after the start
    kills = scenario.sized(1, 5)
    worker = scenario.start_worker("--concurrency", "16", "--log-level", "info",
                                   "--log-format", "json")  # fmt: skip
    began = time.time()
    work = scenario.app.jobs["work"]
    due: dict[float, list[JobCall]] = defaultdict(list)
    for _ in range(count):
        offset = random.uniform(LEAD, span)
        due[round(offset / GROUP) * GROUP].append(work.call(0))
    for offset, calls in sorted(due.items()):
        at = max(began + offset, time.time() + LEAD)
        scenario.enqueue(calls, at=datetime.fromtimestamp(at, UTC))
    enqueued = time.time() - began
    for kill in range(kills):  # spread over the span, while jobs fall due
        time.sleep(max(0.0, began + span * (kill + 1) / (kills + 1) - time.time()))
        scenario.broker.kill_and_restart()
    wait_until(lambda: len(scenario.completed()) >= count, span + 120 + count / 20, interval=1)
    assert worker.poll() is None, "the worker died with the broker"
    scenario.stop_workers()
    made = scenario.check()
    put_back = early_put_back(scenario)
    print(f"{count:,} delayed jobs enqueued in {enqueued:.0f} s, due over {span} s, "
          f"{kills} broker kills; the worker put back {put_back} delivered early")  # fmt: skip
    assert (made.jobs, made.lost, made.dead_lettered) == (count, 0, 0), made.lost_ids
    assert made.early == 0


def early_put_back(scenario: Scenario) -> int:
    """How many deliveries came before their run_at, from the workers' last log line."""
    total = 0
    for log in scenario.directory.glob("worker-*.log"):
        stopped = [line for line in log.read_text().splitlines() if '"worker stopped"' in line]
        assert stopped, f"{log.name} has no stop line: {log.read_text()[-2000:]}"
        total += sum(json.loads(line)["early"] for line in stopped)
    return total
