"""Scenario 19: 4 processes call two debounced jobs (one key each: their type) for 3 s (10 s
with --long) while a worker is killed with SIGKILL every 1-2 s: each key runs once, with the
last call's arguments (or the first's, as declared), and every call's job is settled."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import time
from collections import Counter

import pytest

from pulsarjobs import Inspector
from tests.integration.helpers import wait_until
from tests.reliability.conftest import Scenario
from tests.reliability.recorder import read_events

pytestmark = pytest.mark.reliability

CALLERS = 4
FIRST, LAST = -1, -2  # the callers of the test's own first and last calls


def test_debounce_kill_9(scenario: Scenario) -> None:
    calls = scenario.sized(200, 1_000)
    seconds = scenario.sized(3, 10)
    last, first = scenario.app.jobs["reindex_last"], scenario.app.jobs["reindex_first"]
    first.enqueue(FIRST, 0)  # before anyone: its arguments are the run's
    workers = [scenario.start_worker("--concurrency", "8") for _ in range(2)]
    callers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.debounce_calls",
                str(caller),
                str(calls // CALLERS),
                str(seconds),
            ],
            env=scenario.env,
            stderr=subprocess.PIPE,
        )
        for caller in range(CALLERS)
    ]
    directory = scenario.recorder.directory
    wait_until(lambda: len(list(directory.glob("ready-*"))) == CALLERS, 120)
    (directory / "go").touch()
    kills = 0
    while any(caller.poll() is None for caller in callers):
        time.sleep(random.uniform(1, 2))
        victim = random.randrange(len(workers))
        workers[victim].kill()  # SIGKILL: the jobs it was deciding on come back
        workers[victim].wait(30)
        workers[victim] = scenario.start_worker("--concurrency", "8")
        kills += 1
    for caller in callers:
        assert caller.wait(60) == 0, caller.stderr.read().decode()[-3000:] if caller.stderr else ""
    last.enqueue(LAST, 0)  # after everyone: its arguments are the run's
    called = len(read_events(scenario.recorder.directory, "called")) + 2

    def ran() -> list[dict[str, object]]:
        return read_events(scenario.recorder.directory, "debounced_ran")

    wait_until(lambda: {run["key"] for run in ran()} == {"first", "last"}, 60)
    with Inspector(scenario.settings) as inspector:  # every call's job settled: none waits
        wait_until(lambda: held(inspector) == 0, 60)
    scenario.stop_workers()
    runs = ran()
    print(f"{called} calls, {kills} kills, runs: {runs}")
    assert called == calls + 2
    assert kills >= 1
    assert Counter(run["key"] for run in runs) == {"first": 1, "last": 1}, gaps(scenario)
    assert {(run["key"], run["caller"]) for run in runs} == {("first", FIRST), ("last", LAST)}


def held(inspector: Inspector) -> int:
    """The jobs of the queue not yet acknowledged: waiting, scheduled or running."""
    stats = inspector.queue("default")
    return stats.waiting + stats.scheduled + stats.in_flight


def gaps(scenario: Scenario) -> str:
    """The longest pauses between calls of each job, to tell a quiet period from a fault."""
    calls = read_events(scenario.recorder.directory, "called")
    said = []
    for job in ("reindex_last", "reindex_first"):
        times = sorted(float(call["at"]) for call in calls if call["type"] == job)
        said.append(f"{job}: {sorted(b - a for a, b in itertools.pairwise(times))[-3:]}")
    return "; ".join(said)
