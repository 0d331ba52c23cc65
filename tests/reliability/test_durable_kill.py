"""Durable jobs (issue #26) under kill -9: a step whose value was stored never runs again, and a
sleep never ends early, with worker processes or the broker killed."""

from __future__ import annotations

import math
import os
import random
import signal
import statistics
import subprocess
import time
from collections import Counter, defaultdict
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import pytest

from pulsarjobs.transport.topics import steps_topic
from pulsarjobs.worker.crashes import CRASHES_BEFORE_DEAD
from pulsarjobs.workflows.durable_store import decode_step
from tests.integration.helpers import read_topic, wait_until
from tests.reliability.app import STEPS
from tests.reliability.conftest import Scenario
from tests.reliability.recorder import read_events, read_record
from tests.reliability.test_delayed_broker_kill import early_put_back

pytestmark = pytest.mark.reliability

CONCURRENCY = 8
Key = tuple[str, str]  # a job id and a step name


def test_durable_steps_under_worker_kill_9(scenario: Scenario) -> None:
    """Jobs of 5 steps (20-200 ms each) run by `pulsarjobs worker --processes 2`; every 1-3 s
    one of its worker processes gets SIGKILL (the supervisor starts another), and every third
    time the supervisor and its processes all at once (a new worker starts): the crash ledger
    of a supervisor would dead-letter a job found running in 3 deaths of its processes, by
    design (crashes.py), so a supervisor sees at most 2 of them. Every job completes.

    When a step is stored is known from the record: each run of a step's function records its
    start and a token of its own, which is the step's value; each value the job gets back from
    `step_sync` is recorded, and the next step records the value of the step before it, which
    was stored since it runs. The first of those records of a step is a time by which a value
    of the step was stored. A run of the step that started after it is a violation: the step
    ran again once completed (its token then differs from the stored one, made before). There
    must be none. Runs before it are allowed: a run killed after its step ran and before the
    broker confirmed the value runs it again; they are reported as duplicates."""
    count = scenario.sized(100, 1_000)
    five_steps = scenario.app.jobs["five_steps"]
    scenario.enqueue([five_steps.call(random.randint(20, 200)) for _ in range(count)])
    options = ("--processes", "2", "--concurrency", str(CONCURRENCY))
    supervisor = scenario.start_worker(*options)
    kills = group_kills = 0
    deadline = time.monotonic() + 120 + count / 2
    while len(scenario.completed()) < count:
        assert time.monotonic() < deadline, f"{len(scenario.completed())} of {count} completed"
        time.sleep(random.uniform(1, 3))
        if (kills + 1) % CRASHES_BEFORE_DEAD:
            processes = worker_processes(supervisor)
            if not processes:
                continue  # the supervisor is starting them again
            os.kill(random.choice(processes), signal.SIGKILL)
        else:
            kill_group(supervisor)
            supervisor = scenario.start_worker(*options)
            group_kills += 1
        kills += 1
    scenario.stop_workers()
    steps = StepRecord.read(scenario)
    stored_twice = steps.stored_twice(scenario)
    notes = (f"{kills} kills ({group_kills} of the whole worker); {len(steps.ran):,} runs of "
             f"{count * STEPS:,} steps, re-run after stored {len(steps.violations)}, "
             f"re-run before stored {steps.duplicates} ({stored_twice} stored twice)")  # fmt: skip
    made = scenario.check(notes=notes)
    assert kills >= 2
    assert (made.lost, made.dead_lettered) == (0, 0), made.lost_ids
    assert steps.violations == [], steps.violations[:5]


class StepRecord:
    """The runs of the durable jobs' steps, and when each step was known to be stored."""

    def __init__(self, ran: list[dict[str, object]], stored_by: dict[Key, float]) -> None:
        self.ran = ran
        self.stored_by = stored_by  # the first time a value of the step was known stored

    @classmethod
    def read(cls, scenario: Scenario) -> StepRecord:
        directory = scenario.recorder.directory
        ran = read_events(directory, "step_ran")
        stored_by: dict[Key, float] = defaultdict(lambda: math.inf)
        for event in read_events(directory, "step_stored"):
            key = (str(event["job"]), str(event["step"]))
            stored_by[key] = min(stored_by[key], float(event["at"]))
        for event in ran:  # the step before this one was stored before it started
            number = int(str(event["step"]).removeprefix("step-"))
            if event["previous"] is not None:
                key = (str(event["job"]), f"step-{number - 1}")
                stored_by[key] = min(stored_by[key], float(str(event["started"])))
        return cls(ran, dict(stored_by))

    def key(self, event: dict[str, object]) -> Key:
        return str(event["job"]), str(event["step"])

    @property
    def violations(self) -> list[dict[str, object]]:
        """The runs of a step that started after a value of it was stored."""
        return [
            event
            for event in self.ran
            if float(str(event["started"])) > self.stored_by.get(self.key(event), math.inf)
        ]

    @property
    def duplicates(self) -> int:
        """The runs of steps beyond the first, the violations left out."""
        per_step = Counter(self.key(event) for event in self.ran)
        return sum(n - 1 for n in per_step.values()) - len(self.violations)

    def stored_twice(self, scenario: Scenario) -> int:
        """Steps of which the broker got more than one value (the topic keeps every message)."""
        topic = steps_topic(scenario.settings)
        keys = Counter(message.partition_key() for message in read_topic(scenario.settings, topic))
        return sum(1 for n in keys.values() if n > 1)


def worker_processes(supervisor: subprocess.Popen[bytes]) -> list[int]:
    """The pids of a supervisor's worker processes (its children)."""
    children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children")
    with suppress(OSError):
        return [int(pid) for pid in children.read_text().split()]
    return []


def kill_group(supervisor: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the supervisor, then to its worker processes: each run in them ends where it
    is (a process outliving its supervisor would stop gracefully)."""
    processes = worker_processes(supervisor)
    supervisor.kill()  # first: it starts no process in place of those killed next
    supervisor.wait(30)
    for pid in processes:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_durable_sleeps_across_broker_kill_9(own_scenario: Scenario) -> None:
    """Durable jobs that sleep 5-20 s (5-60 s long) across a broker SIGKILL and restart, one
    worker: every job resumes, none before its wake-up as stored on the steps topic, to the
    millisecond (the run after the sleep records when it went on past it). Reported: the
    lateness past the wake-up, and the runs besides the first that started before it (each
    must park again: one that went on is early)."""
    scenario = own_scenario
    count = scenario.sized(1_000, 10_000)
    longest = scenario.sized(20, 60)
    kills = scenario.sized(1, 3)
    scenario.start_worker("--concurrency", "16", "--log-level", "info", "--log-format", "json")
    sleeps = scenario.app.jobs["sleeps"]
    scenario.enqueue([sleeps.call(round(random.uniform(5, longest), 3)) for _ in range(count)])
    wait_until(lambda: len(dict(sleepers(scenario))) >= count, 120 + count / 20, 1)
    began = time.time()  # every job is asleep, waking in the next `longest` seconds
    for kill in range(kills):  # spread over the sleeps, while jobs wake
        time.sleep(max(0.0, began + longest * (kill + 1) / (kills + 1) - time.time()))
        scenario.broker.kill_and_restart()
    wait_until(lambda: len(scenario.completed()) >= count, longest + 180 + count / 20, 1)
    scenario.stop_workers()
    wake_ups = stored_wake_ups(scenario)
    _, runs = read_record(scenario.recorder.directory)
    # A run's due time is its job's stored wake-up, the latest if it was stored twice.
    runs = [replace(run, run_at=max(wake_ups.get(run.job_id, [0.0]))) for run in runs]
    late = sorted(run.started - (run.run_at or 0.0) for run in runs)
    before_wake: Counter[str] = Counter(
        job_id
        for job_id, started in sleepers(scenario)
        if started < min(wake_ups.get(job_id, [math.inf]))
    )
    before_wake_again = sum(n - 1 for n in before_wake.values())  # the first run aside
    notes = (f"lateness p50 {percentile(late, 50):.2f} s, p99 {percentile(late, 99):.2f} s, "
             f"max {late[-1]:.2f} s; {kills} broker kills; "
             f"{sum(len(w) > 1 for w in wake_ups.values())} sleeps stored twice; "
             f"{before_wake_again} runs besides the first started before the wake-up, "
             f"{early_put_back(scenario)} put back by the worker's guard")  # fmt: skip
    made = scenario.check(runs=runs, notes=notes)
    assert (made.jobs, made.lost, made.dead_lettered) == (count, 0, 0), made.lost_ids
    assert set(wake_ups) == {run.job_id for run in runs}
    assert made.early == 0


def sleepers(scenario: Scenario) -> list[tuple[str, float]]:
    """The runs of the sleeping jobs: job id, start."""
    events = read_events(scenario.recorder.directory, "sleeper_ran")
    return [(str(event["job"]), float(str(event["started"]))) for event in events]


def stored_wake_ups(scenario: Scenario) -> dict[str, list[float]]:
    """Each job's wake-ups (Unix time) as stored on the steps topic, oldest first."""
    wake_ups: dict[str, list[float]] = defaultdict(list)
    for message in read_topic(scenario.settings, steps_topic(scenario.settings)):
        job_id, name = message.partition_key().split("/", 1)
        if name == "sleep-1":
            wake_ups[job_id].append(decode_step(message.data()) / 1000)
    return dict(wake_ups)


def percentile(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else math.nan
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]
