"""Nodes of a real cluster die mid-run: every job whose enqueue returned runs, none starts early.

Each run: a worker process works a queue while a producer enqueues jobs through the failure
(spread over PRODUCE_SECONDS) and delayed jobs are pending; one node is killed with SIGKILL once
a quarter of the jobs have run. Each test prints what it measured: lost, duplicates, enqueue
calls that raised, and how long work paused.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pulsarjobs.app import App
from pulsarjobs.broker.cluster import LocalCluster
from pulsarjobs.errors import PulsarJobsError
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import topics_for
from tests.apps.pipeline import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    settings_env,
    start_worker_process,
    started,
    wait_until,
    worker_in_thread,
)

pytestmark = pytest.mark.cluster

FULL = os.environ.get("PULSARJOBS_TEST_CLUSTER_FULL") == "1"
JOBS, DELAYED = (20_000, 2_000) if FULL else (2_000, 200)
PRODUCE_SECONDS = 20.0 if FULL else 12.0
# The delayed jobs come due over the whole run, through the failure and the pause after it
# (about the metadata session timeout, 10 s, plus a few seconds for a broker's).
DELAYS = range(10, 60, 5) if FULL else range(8, 32, 4)


@dataclass
class Producer:
    """Enqueues `total` jobs in small batches, remembering the ids of every call that returned."""

    app: App
    total: int
    returned: set[str] = field(default_factory=set)
    failed_calls: list[str] = field(default_factory=list)
    crash: BaseException | None = None

    def run(self) -> None:
        job = self.app.jobs["scheduled"]
        batch = max(1, int(self.total / (PRODUCE_SECONDS * 10)))
        sent = 0
        try:
            while sent < self.total:
                calls = [job.call(sent + n) for n in range(batch)]
                try:
                    ids = self.app.enqueue_many(calls)
                except PulsarJobsError as exc:
                    # Raised, not dropped: some of these may still run (extra, never lost).
                    self.failed_calls.append(str(exc))
                    time.sleep(0.5)
                    continue
                self.returned.update(ids)
                sent += batch
                time.sleep(0.1)
        except BaseException as exc:
            self.crash = exc


@dataclass
class Outcome:
    expected: set[str]
    delayed: set[str]
    starts: list[dict[str, Any]]
    killed_at: float
    failed_calls: list[str]

    def report(self, name: str) -> str:
        runs = Counter(start["id"] for start in self.starts)
        duplicates = sum(count - 1 for count in runs.values())
        # Gaps between runs of jobs due now (delayed ones come due in steps, with gaps of
        # their own) from the kill on.
        now = [s["t"] for s in self.starts if s["id"] not in self.delayed]
        after = sorted(t for t in now if t >= self.killed_at)
        points = [self.killed_at, *after]
        gap = max(range(len(points) - 1), key=lambda i: points[i + 1] - points[i])
        return (
            f"{name}: {len(self.expected) - len(self.delayed)} jobs + {len(self.delayed)} "
            f"delayed enqueued, lost {len(self.expected - set(runs))}, duplicates {duplicates}, "
            f"enqueue calls that raised {len(self.failed_calls)}, work paused "
            f"{points[gap + 1] - points[gap]:.1f} s and resumed "
            f"{points[gap + 1] - self.killed_at:.1f} s after the kill"
        )


def live_admin(cluster: LocalCluster) -> Admin:
    """An admin client on a broker that runs (the cluster's first may be the killed one)."""
    brokers = [node for node in cluster.role("broker") if node.process.state() == "running"]
    return brokers[0].admin()


def cluster_settings(cluster: LocalCluster) -> Settings:
    return fresh_settings(BrokerUnderTest(cluster.service_url, cluster.admin_url))


def run_through_failure(
    cluster: LocalCluster, tmp_path: Path, kill: Callable[[str], None]
) -> Outcome:
    """Work a queue while `kill(queue topic)` kills a node; wait until every job ran."""
    settings = cluster_settings(cluster)
    record = tmp_path / "record.jsonl"
    app = make_app(settings)
    env = settings_env(settings, record)
    worker = start_worker_process(env, tmp_path / "worker.log", "--concurrency", "16")
    try:
        job = app.jobs["scheduled"]
        delayed: set[str] = set()
        each = DELAYED // len(DELAYS)
        for step, seconds in enumerate(DELAYS):
            calls = [job.call(-1 - step * each - n) for n in range(each)]
            delayed.update(app.enqueue_many(calls, in_=timedelta(seconds=seconds)))
        producer = Producer(app, JOBS)
        producing = threading.Thread(target=producer.run, daemon=True)
        producing.start()
        wait_until(lambda: len(started(record)) >= JOBS // 4, timeout=300, interval=0.2)
        killed_at = time.time()
        kill(topics_for(settings, "default").jobs)
        producing.join(timeout=900)
        assert producer.crash is None, f"the producer crashed: {producer.crash!r}"
        assert not producing.is_alive(), "the producer did not finish"
        expected = producer.returned | delayed
        deadline = time.monotonic() + 600  # then `check` names what never ran
        while not expected <= {s["id"] for s in started(record)} and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        worker.terminate()
        worker.wait(60)
        app.close()
    return Outcome(expected, delayed, started(record), killed_at, producer.failed_calls)


def check(outcome: Outcome, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\n{outcome.report(name)}")
    ran = {start["id"] for start in outcome.starts}
    assert outcome.expected - ran == set(), "jobs whose enqueue returned never ran"
    early = [s for s in outcome.starts if s["id"] in outcome.delayed and s["t"] < s["run_at"]]
    assert early == [], "delayed jobs started before they were due"
    pending = [s for s in outcome.starts if s["id"] in outcome.delayed]
    assert max(s["run_at"] for s in pending) > outcome.killed_at, "no delayed job was pending"


@pytest.fixture
def restarts_killed(cluster: LocalCluster) -> Iterator[list[str]]:
    """Nodes a test kills, started again afterwards so that the next test has all of them."""
    killed: list[str] = []
    yield killed
    for name in killed:
        cluster.start_node(name)


def test_killing_the_broker_that_owns_a_queue_loses_no_job(
    cluster: LocalCluster,
    tmp_path: Path,
    restarts_killed: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def kill_owner(topic: str) -> None:
        with live_admin(cluster) as admin:
            owner = cluster.node_serving(admin.owner(topic)).name
        restarts_killed.append(owner)
        cluster.kill(owner)

    outcome = run_through_failure(cluster, tmp_path, kill_owner)
    check(outcome, f"kill -9 {restarts_killed[0]} (owner of the queue)", capsys)


def test_killing_a_bookie_of_the_queue_loses_no_job(
    cluster: LocalCluster,
    tmp_path: Path,
    restarts_killed: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def kill_bookie(topic: str) -> None:
        port = current_bookies(cluster, topic)[0]
        bookie = next(node for node in cluster.role("bookie") if node.port == port)
        restarts_killed.append(bookie.name)
        cluster.kill(bookie.name)

    outcome = run_through_failure(cluster, tmp_path, kill_bookie)
    check(outcome, f"kill -9 {restarts_killed[0]} (a bookie of the queue's ledger)", capsys)


def current_bookies(cluster: LocalCluster, topic: str) -> list[int]:
    """The ports of the bookies the topic's open ledger writes to."""
    path = topic.replace("persistent://", "/admin/v2/persistent/") + "/internalStats"
    with httpx.Client(base_url=cluster.admin_url, follow_redirects=True) as http:
        ledgers = http.get(path, params={"metadata": "true"}).json()["ledgers"]
    ensembles = re.findall(r"\[([^\]]*)\]", ledgers[-1]["metadata"].split("ensembles=")[1])
    return [int(address.rsplit(":", 1)[1]) for address in ensembles[-1].split(", ")]


def test_a_killed_broker_restarted_at_once_rejoins_and_takes_topics_again(
    cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = cluster_settings(cluster)
    topic = topics_for(settings, "default").jobs
    with make_app(settings) as app:
        app.enqueue(app.jobs["scheduled"].call(0))
    with live_admin(cluster) as admin:
        victim = cluster.node_serving(admin.owner(topic))
    cluster.kill(victim.name)
    # Its metadata session is still alive: the launcher waits until it can register again.
    cluster.start_node(victim.name)
    assert cluster.status().state == "running"

    # New queues land on it again, and their jobs run.
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("PULSARJOBS_TEST_RECORD", str(record))
    deadline = time.monotonic() + 180
    while True:
        settings = cluster_settings(cluster)
        app = make_app(settings)
        job_id = app.enqueue(app.jobs["scheduled"].call(1))
        with live_admin(cluster) as admin:
            owner = cluster.node_serving(admin.owner(topics_for(settings, "default").jobs))
        if owner.name == victim.name:
            break
        app.close()
        assert time.monotonic() < deadline, f"no new queue went to {victim.name}"
    try:
        with worker_in_thread(app):
            wait_until(lambda: job_id in {s["id"] for s in started(record)}, timeout=60)
    finally:
        app.close()
