"""Concurrency limits on the real broker: never more than the limit at once, across workers and
across a kill -9."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pulsarjobs.app import App
from pulsarjobs.flow.limits import limits
from pulsarjobs.operations.inspector import Inspector
from tests.apps.flow import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    records,
    settings_env,
    start_worker_process,
    stop_process,
    wait_until,
)

JOBS = 150  # 10 s of work at the limit: long enough for heartbeats
LIMIT = 3  # as tests/apps/flow.py declares `limited`


@pytest.fixture
def flow_app(broker: BrokerUnderTest) -> Iterator[App]:
    created = make_app(fresh_settings(broker))
    yield created
    created.close()


def test_limit_of_three_over_four_workers_holds_across_a_kill_9(
    flow_app: App, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    env = settings_env(flow_app.settings, record)
    logs = [tmp_path / f"worker{i}.log" for i in range(4)]
    workers = [
        start_worker_process(env, log, "--concurrency", "8", app="tests.apps.flow:app")
        for log in logs
    ]
    victim = workers[0]
    enqueued = set(flow_app.enqueue_many([flow_app.jobs["limited"].call(n) for n in range(JOBS)]))
    try:
        with Inspector(flow_app.settings) as inspector:  # workers tell of jobs over the limit
            waiting = lambda: sum(w.held_by_limit for w in inspector.workers())  # noqa: E731
            wait_until(lambda: waiting() > 0, 60, interval=0.5)
        wait_until(lambda: any(r["pid"] == victim.pid for r in started(record)), 120)
        victim.kill()  # SIGKILL, probably holding a slot: the broker must hand it back
        killed_at = time.time()  # its runs end here: its slot can go to another before wait()
        victim.wait(30)
        wait_until(lambda: {r["id"] for r in ended(record)} >= enqueued, 300, interval=0.5)
    finally:
        for worker, log in zip(workers[1:], logs[1:], strict=True):
            assert stop_process(worker) == 0, log.read_text()[-2000:]
    runs = records(record)
    most = most_running_at_once(runs, open_runs_end_at=killed_at)
    print(f"at most {most} running at once; limits marked: {limits(flow_app.connection)}")
    assert most <= LIMIT
    assert most == LIMIT, "the limit was never reached: the test proves nothing"
    assert limits(flow_app.connection) == {"limited": LIMIT}
    # Every slot works again after the kill, the victim's too.
    after_kill = [r for r in runs if r["t"] > killed_at]
    assert most_running_at_once(after_kill, open_runs_end_at=time.time()) == LIMIT
    first = min(r["t"] for r in after_kill if r["event"] == "start")
    print(f"first start after the kill: {first - killed_at:.2f} s later")


def started(path: Path) -> list[dict[str, Any]]:
    return [r for r in records(path) if r["event"] == "start"]


def ended(path: Path) -> list[dict[str, Any]]:
    return [r for r in records(path) if r["event"] == "end"]


def most_running_at_once(runs: list[dict[str, Any]], open_runs_end_at: float) -> int:
    """The most runs between their start and end at one instant; a run the kill cut short
    counts as running until the kill."""
    ends = {(r["id"], r["pid"]): r["t"] for r in runs if r["event"] == "end"}
    changes = []
    for run in runs:
        if run["event"] == "start":
            changes.append((run["t"], 1))
            changes.append((ends.get((run["id"], run["pid"]), open_runs_end_at), -1))
    running = most = 0
    for _, change in sorted(changes, key=lambda c: (c[0], c[1])):  # an end before a start
        running += change
        most = max(most, running)
    return most
