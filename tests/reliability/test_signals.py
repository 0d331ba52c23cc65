"""Scenario 14: durable jobs waiting for signals (100 jobs on 100 keys; 1,000 long), the signals
sent by 4 sender processes with `app.signal`, the jobs run by 2 worker processes.

The keys are shuffled into four shares: 20% are signalled before their job is enqueued (kept
signals: the job meets its signal without parking), 10% while the jobs are being enqueued and
parked (the signal and the wait cross), 60% once their job has parked (a tenth of them by two
senders each, with the same payload), and 10% never: those jobs time out. All jobs share one
timeout, long enough that every signal comes well before it.

Each job records, past the wait, its payload or that it timed out, and which copy of the job
went on (its lineage, signals.py). The guarantee under test: every signalled job goes past the
wait exactly once, with its own payload; every other one times out exactly once, never before
its deadline; the copy parked until the timeout of a job a signal resumed ends superseded.

The second test kills a worker with `kill -9` twice: while the jobs register their waits, meet
kept signals and cross racing ones, and while signals resume parked jobs. There exactly once
cannot hold for the code past the wait as this job writes it: a worker killed after the job
recorded its resumption and before the broker had its acknowledgement runs that copy of the
job again, as any job (at least once).
What must still hold: every job goes past its wait with its own payload (or timed out, never
both), in one copy only (the runs past the wait of a job all carry the same lineage: a second
copy never goes on), and only what was in flight at the kill runs twice past the wait. Code
that must run once past a wait belongs in a step.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import start_worker_process, wait_until
from tests.reliability import report
from tests.reliability.conftest import Scenario
from tests.reliability.recorder import read_record
from tests.reliability.signals_app import make_app

pytestmark = pytest.mark.reliability

APP = "tests.reliability.signals_app:app"
SENDER = "tests.reliability.signals_app"
SENDERS = 4
WORKERS = 2
CONCURRENCY = 16


@dataclass
class Plan:
    """The keys of a run, shuffled into shares, and each key's payload."""

    before: list[str]  # signalled before the jobs are enqueued
    racing: list[str]  # signalled while they are enqueued and parked
    after: list[str]  # signalled once their job parked
    twice: list[str]  # among `after`: signalled by two senders
    never: list[str]  # never signalled: their jobs time out
    payloads: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def make(cls, count: int) -> Plan:
        keys = [f"order-{n}" for n in range(count)]
        random.shuffle(keys)
        shares = [count * 2 // 10, count // 10, count // 10]
        before, racing, never = (keys[sum(shares[:i]) : sum(shares[: i + 1])] for i in range(3))
        after = keys[sum(shares) :]
        payloads = {key: {"key": key, "token": uuid.uuid4().hex} for key in keys}
        return cls(before, racing, after, after[: len(after) // 10], never, payloads)

    @property
    def signalled(self) -> list[str]:
        return self.before + self.racing + self.after


@dataclass(frozen=True)
class Resumption:
    """A run past the wait, as the job recorded it."""

    job_id: str
    key: str
    payload: Any
    timed_out: bool
    copy: tuple[str, ...]
    at: float


def test_signals_resume_each_waiting_job_once(scenario: Scenario) -> None:
    run_scenario(scenario, kill=False)


def test_signals_under_worker_kill_9(scenario: Scenario) -> None:
    run_scenario(scenario, kill=True)


def run_scenario(scenario: Scenario, kill: bool) -> None:
    count, timeout = scenario.sized(100, 1_000), scenario.sized(20, 120)
    plan = Plan.make(count)
    app = make_app(scenario.settings)
    sent_dir = scenario.directory / "sent"
    sent_dir.mkdir()
    workers = [start_worker(scenario) for _ in range(WORKERS)]
    try:
        finish(start_senders(scenario, "before", plan, plan.before, sent_dir))
        racing = start_senders(scenario, "racing", plan, plan.racing, sent_dir)
        order = random.sample(plan.signalled + plan.never, count)
        awaits = app.jobs["awaits"]
        ids = app.enqueue_many([awaits.call(key, float(timeout)) for key in order])
        scenario.recorder.enqueued(ids)
        key_of = dict(zip(ids, order, strict=True))
        kills = 0
        if kill:  # while jobs register their waits, meet kept signals and cross racing ones
            wait_until(lambda: len(resumptions(scenario)) >= len(plan.before) // 2, 120, 0.2)
            kill_and_replace(scenario, workers, 1)
            kills += 1
        finish(racing)
        parking = {job_id for job_id, key in key_of.items() if key in plan.after + plan.never}
        wait_until(lambda: parking <= {w.job_id for w in app.signals.waiting()}, 60 + count / 5, 1)
        after = start_senders(scenario, "after", plan, plan.after + plan.twice, sent_dir)
        if kill:  # while signals resume parked jobs
            half = set(plan.after[: len(plan.after) // 2])
            wait_until(lambda: half <= {r.key for r in resumptions(scenario)}, 120, 0.2)
            kill_and_replace(scenario, workers, 0)
            kills += 1
        finish(after)
        wait_until(lambda: {r.key for r in resumptions(scenario)} == set(order),
                   timeout + 120 + count / 5, 1)  # fmt: skip
        resumed_by_senders = sum(line["resumed"] for line in sent_lines(sent_dir))
        if not kill:  # each copy parked until its timeout comes round, and ends there
            wait_until(lambda: superseded(scenario) >= resumed_by_senders, timeout + 60, 1)
        scenario.stop_workers()
    finally:
        app.close()
    check(scenario, plan, key_of, sent_dir, kills)


def start_worker(scenario: Scenario) -> subprocess.Popen[bytes]:
    log = scenario.directory / f"worker-{len(scenario.workers)}.log"
    env = {**scenario.env, "PYTHONUNBUFFERED": "1"}  # a killed worker's log lines are kept
    options = ("--concurrency", str(CONCURRENCY), "--log-level", "info")
    process = start_worker_process(env, log, *options, app=APP)
    scenario.workers.append(process)
    return process


def kill_and_replace(
    scenario: Scenario, workers: list[subprocess.Popen[bytes]], victim: int
) -> None:
    """SIGKILL: what the worker ran and had not acknowledged runs again, and the locks of the
    waits it was settling are given back as its connection drops."""
    workers[victim].kill()
    workers[victim].wait(30)
    workers[victim] = start_worker(scenario)


def start_senders(
    scenario: Scenario, phase: str, plan: Plan, keys: list[str], record: Path
) -> list[subprocess.Popen[bytes]]:
    """SENDERS processes sending the keys' signals, the keys dealt round; a key listed twice
    goes to two different senders."""
    dealt: list[list[tuple[str, Any]]] = [[] for _ in range(SENDERS)]
    seen: dict[str, int] = {}
    for n, key in enumerate(keys):
        sender = (seen[key] + 1) % SENDERS if key in seen else n % SENDERS
        seen[key] = sender
        dealt[sender].append((key, plan.payloads[key]))
    processes = []
    for n, signals in enumerate(dealt):
        path = scenario.directory / f"{phase}-{n}.json"
        path.write_text(json.dumps(signals))
        with (scenario.directory / f"sender-{phase}-{n}.log").open("ab") as log:
            command = [sys.executable, "-m", SENDER, str(path), str(record)]
            processes.append(subprocess.Popen(command, env=scenario.env, stdout=log, stderr=log))
    return processes


def finish(senders: list[subprocess.Popen[bytes]]) -> None:
    codes = [sender.wait(300) for sender in senders]
    assert codes == [0] * len(senders), f"a sender failed: {codes}"


def jsonl(directory: Path) -> Iterable[dict[str, Any]]:
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.endswith("}"):  # a line cut by a kill was not written, as far as we know
                yield json.loads(line)


def sent_lines(directory: Path) -> list[dict[str, Any]]:
    return list(jsonl(directory))


def resumptions(scenario: Scenario) -> list[Resumption]:
    return [Resumption(item["ran"], item["key"], item["payload"], item["timed_out"],
                       tuple(item["copy"]), item["started"])
            for item in jsonl(scenario.recorder.directory) if "ran" in item]  # fmt: skip


def superseded(scenario: Scenario) -> int:
    """The copies of jobs that ended superseded, from the workers' logs."""
    logs = scenario.directory.glob("worker-*.log")
    return sum(log.read_text().count("job copy superseded ") for log in logs)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def counted(run: Resumption, resumed: int, kills: int) -> bool:
    """Whether the senders' counts of the jobs they resumed fit how the job went on: once by a
    copy a signal made, none when it met its kept signal. After a kill, a job a sender resumed
    can also go on in its own run delivered again (killed once it had registered its wait and
    before its ack), which claims the wait first and carries no copy's lineage."""
    if run.copy:
        return resumed == 1
    return resumed == 0 or (kills > 0 and resumed == 1)


def check(
    scenario: Scenario, plan: Plan, key_of: dict[str, str], sent_dir: Path, kills: int
) -> None:
    runs = resumptions(scenario)
    by_job: dict[str, list[Resumption]] = defaultdict(list)
    for run in runs:
        by_job[run.job_id].append(run)
    sends: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in sent_lines(sent_dir):
        sends[line["signal"]].append(line)
    signalled, never = set(plan.signalled), set(plan.never)
    wrong = [
        r
        for r in runs
        if r.key != key_of[r.job_id]
        or (r.key in signalled and (r.timed_out or r.payload != plan.payloads[r.key]))
    ]
    not_timed_out = [r for r in runs if r.key in never and not r.timed_out]
    beyond_first = sum(len(found) - 1 for found in by_job.values())
    two_copies = {job_id: {r.copy for r in found} for job_id, found in by_job.items()
                  if len({r.copy for r in found}) > 1}  # fmt: skip
    first = {job_id: found[0] for job_id, found in by_job.items()}
    resumed_count = {key: sum(line["resumed"] for line in sends[key]) for key in signalled}
    miscounted = [
        run.key
        for run in first.values()
        if run.key in signalled and not counted(run, resumed_count[run.key], kills)
    ]
    kept_parked = [run.key for run in first.values() if run.key in plan.before and run.copy]
    after_set = set(plan.after)
    latencies = [run.at - min(line["sent"] for line in sends[run.key])
                 for run in first.values() if run.key in after_set]  # fmt: skip
    copies = superseded(scenario)
    notes = (f"{len(signalled)} signalled ({len(plan.before)} before the wait, "
             f"{len(plan.racing)} racing it, {len(plan.after)} after it, {len(plan.twice)} "
             f"twice), {len(never)} never; {kills} kills; past the wait: {beyond_first} runs "
             f"beyond the first, {len(wrong)} wrong payloads; {copies} copies superseded; "
             f"signal to resume p50 {percentile(latencies, 0.5):.2f} s, "
             f"p99 {percentile(latencies, 0.99):.2f} s")  # fmt: skip
    enqueued, ran = read_record(scenario.recorder.directory)
    made = report.check(scenario.name, scenario.size, enqueued, ran, scenario.dead_letters(),
                        time.monotonic() - scenario.started, notes)  # fmt: skip
    assert (made.jobs, made.lost, made.dead_lettered, made.early) == (len(key_of), 0, 0, 0), (
        made.lost_ids
    )
    assert wrong == [] and not_timed_out == []
    assert set(by_job) == set(key_of)
    assert two_copies == {}, "a second copy of a job went on past its wait"
    assert miscounted == [], "app.signal's count of the jobs it resumed"
    assert kept_parked == [], "a job signalled before it waited parked"
    assert all(not first[job_id].copy for job_id, key in key_of.items() if key in never)
    if kills:
        assert beyond_first <= kills * 2 * CONCURRENCY
    else:
        assert beyond_first == 0, "a job went past its wait more than once"
        assert copies == sum(resumed_count.values())
