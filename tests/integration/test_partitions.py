"""A queue on a partitioned topic (4 partitions) on a real broker: jobs, retries, one dead-letter
topic, the inspector, the dashboard, replay, run now, strict priority and scheduled jobs."""

from __future__ import annotations

import itertools
import os
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pulsar
import pytest

from pulsarjobs.app import App
from pulsarjobs.dashboard import Secret, create_app
from pulsarjobs.operations.browse import Browser
from pulsarjobs.operations.cancels import run_now
from pulsarjobs.operations.dead_letters import DeadLetterFilter
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.operations.replay import replay
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import partition_topic, topics_for
from pulsarjobs.wire.envelope import Envelope, decode
from pulsarjobs.worker.feed import CRASH_REDELIVERIES, subscribe
from tests.integration.helpers import (
    read_topic,
    settings_env,
    started,
    stop_process,
    wait_until,
    worker_in_thread,
)
from tests.integration.test_dashboard import BEARER, TOKEN
from tests.integration.test_operations import cli_json
from tests.integration.test_scheduler import start_scheduler

PARTITIONS = 4


def partitioned(app: App, queue: str = "default") -> str:
    """Make `queue` a partitioned topic before its first job; its topic's full name."""
    topic = topics_for(app.settings, queue).jobs
    with Admin(app.settings.admin_url) as admin:
        admin.create_topic(topic, PARTITIONS)
    return topic


def namespace_topics(app: App) -> list[str]:
    with Admin(app.settings.admin_url) as admin:
        return [t.rsplit("/", 1)[-1] for t in admin.topics(app.settings.full_namespace)]


@pytest.fixture
def inspector(app: App) -> Iterator[Inspector]:
    with Inspector(app.settings) as found:
        yield found


def test_jobs_and_retries_run_and_a_dead_job_lands_in_one_dead_letter_topic(
    app: App, record: Path, inspector: Inspector
) -> None:
    partitioned(app)
    greeted = set(app.enqueue_many([app.jobs["greet"].call(f"n{n}") for n in range(40)]))
    retried = app.jobs["fails_twice"].enqueue()
    dead = app.jobs["always_fails"].enqueue("disk full")
    with worker_in_thread(app, concurrency=8) as worker:
        wait_until(lambda: worker.stats.done == 41 and worker.stats.dead == 1, 60)
    runs = Counter(run["id"] for run in started(record))
    assert {job: runs[job] for job in greeted} == dict.fromkeys(greeted, 1)
    assert (runs[retried], runs[dead]) == (3, 3)

    dead_topics = [name for name in namespace_topics(app) if name.endswith("-DLQ")]
    assert dead_topics == ["default-pulsarjobs-DLQ"]
    [letter] = inspector.dead_letters("default")
    assert (letter.job_id, letter.reason) == (dead, "failed 3 of 3 attempts")
    assert "disk full" in letter.error


def test_the_dead_letter_backstop_of_a_partitioned_queue_writes_to_its_one_topic(
    app: App,
) -> None:
    """A job that crashes workers is redelivered without a verdict; Pulsar's own dead-letter
    policy (named explicitly, not once per partition) takes it in the end."""
    partitioned(app)
    job = app.jobs["greet"].enqueue("crashes")
    topics = topics_for(app.settings, "default")
    client = app.connection.client
    consumer = subscribe(client, topics, app.settings.subscription, 10, 10, "crasher")
    try:
        for _ in range(CRASH_REDELIVERIES + 1):
            consumer.negative_acknowledge(consumer.receive(timeout_millis=10_000))
        with pytest.raises(pulsar.Timeout):
            consumer.receive(timeout_millis=2_000)
    finally:
        consumer.close()

    def dead() -> list[pulsar.Message]:  # the client's dead-letter producer sends it async
        letters = read_topic(app.settings, topics.dead)
        return [m for m in letters if m.properties().get("REAL_TOPIC")]

    wait_until(lambda: len(dead()) >= 1, 30)
    assert len(dead()) == 1
    assert [name for name in namespace_topics(app) if name.endswith("-DLQ")] == [
        "default-pulsarjobs-DLQ"
    ]
    with Inspector(app.settings) as inspector:
        assert [letter.job_id for letter in inspector.dead_letters("default")] == [job]


def test_one_row_per_partitioned_queue_with_the_partitions_summed(
    app: App, record: Path, inspector: Inspector
) -> None:
    partitioned(app)
    app.enqueue_many([app.jobs["greet"].call(f"n{n}") for n in range(30)])
    later = [app.jobs["greet"].call(f"s{n}") for n in range(6)]
    app.enqueue_many(later, in_=timedelta(hours=2))
    app.jobs["always_fails"].enqueue("never")  # dies once a worker runs it three times

    [queue] = inspector.queues()
    assert (queue.queue, queue.waiting, queue.scheduled, queue.dead) == ("default", 31, 6, 0)
    [row] = cli_json(app.settings, "queues")
    assert (row["queue"], row["waiting"], row["scheduled"]) == ("default", 31, 6)

    with worker_in_thread(app, queues="default") as worker:
        wait_until(lambda: worker.stats.dead == 1 and worker.stats.done == 30, 60)
        wait_until(lambda: inspector.queue("default").consumers == 1, 30)
    [queue] = inspector.queues()
    assert (queue.waiting, queue.scheduled, queue.dead) == (0, 6, 1)

    web = create_app(app.settings, Secret(TOKEN))
    from starlette.testclient import TestClient

    with TestClient(web, base_url="http://127.0.0.1:7420") as client:
        shown = client.get("/api/queues", headers=BEARER).json()["queues"]
        assert [(q["queue"], q["scheduled"], q["dead"]) for q in shown] == [("default", 6, 1)]
        one = client.get("/api/queues/default", headers=BEARER).json()
        assert one["stats"]["scheduled"] == 6
        dead = client.get("/api/dead?queue=default", headers=BEARER).json()["page"]["items"]
        assert [letter["reason"] for letter in dead] == ["failed 3 of 3 attempts"]


def test_pages_of_a_partitioned_queue_list_every_job_once_and_run_now_finds_one(
    app: App, record: Path, inspector: Inspector
) -> None:
    partitioned(app)
    ids = app.enqueue_many(
        [app.jobs["greet"].call(f"s{n}") for n in range(60)], in_=timedelta(hours=1)
    )
    browser = Browser(inspector)
    seen: list[str] = []
    after = None
    while True:
        page = browser.scheduled("default", after, 25)
        seen += [job.envelope.id for job in page.items if job.envelope]
        if page.next_after is None:
            break
        after = tuple(int(part) for part in page.next_after.split(":"))  # type: ignore[assignment]
    assert sorted(seen) == sorted(ids)
    assert page.held == 60

    chosen = page.items[-1]
    found = browser.message("default", "jobs", parse(chosen.position))
    assert found is not None and found.job is not None and found.job.envelope == chosen.envelope
    assert run_now(inspector, "default", chosen.position) == chosen.envelope.id  # type: ignore[union-attr]
    with worker_in_thread(app):
        wait_until(lambda: len(started(record)) == 1, 30)
    assert [run["greeting"] for run in started(record)] == [f"hello {chosen.envelope.args[0]}!"]  # type: ignore[union-attr]


def parse(position: str) -> tuple[int, int]:
    ledger, entry = position.split(":")
    return int(ledger), int(entry)


def test_a_dead_letter_is_replayed_to_a_partitioned_queue_once(
    app: App, record: Path, inspector: Inspector, fix: Path
) -> None:
    partitioned(app)
    app.enqueue_many([app.jobs["breaks"].call(n, "value") for n in range(20)])
    with worker_in_thread(app) as worker:
        wait_until(lambda: worker.stats.dead == 20, 60)
    moved = replay(inspector, "default", DeadLetterFilter())
    again = replay(inspector, "default", DeadLetterFilter())
    assert (moved.moved, again.matched) == (20, 0)
    record.write_text("")
    fix.touch()
    with worker_in_thread(app) as worker:
        wait_until(lambda: worker.stats.done == 20, 60)
    assert len(started(record)) == 20 and inspector.dead_count("default") == 0


def test_strict_priority_runs_a_partitioned_high_queue_first(app: App, record: Path) -> None:
    partitioned(app, "critical")
    app.enqueue_many([app.jobs["default_job"].call(n) for n in range(100)])
    app.enqueue_many([app.jobs["critical_job"].call(n) for n in range(100)])
    with worker_in_thread(app, queues="critical,default", concurrency=1):
        wait_until(lambda: len(started(record)) == 200, 60)
    order = [run["queue"] for run in started(record)]
    last_critical = max(i for i, queue in enumerate(order) if queue == "critical")
    # Only the few default jobs fetched before the critical queue answered may run first.
    assert order[: last_critical + 1].count("default") <= 8, order


def test_scheduled_jobs_on_a_partitioned_queue_never_start_early(app: App, record: Path) -> None:
    partitioned(app)
    now = datetime.now(UTC)
    for n in range(40):
        app.enqueue(app.jobs["scheduled"].call(n), at=now + timedelta(seconds=1 + n / 10))
    with worker_in_thread(app, concurrency=8):
        wait_until(lambda: len(started(record)) == 40, 60)
    early = [run for run in started(record) if run["t"] < run["run_at"]]
    assert early == []


def test_a_schedule_on_a_partitioned_queue_enqueues_each_tick_once_through_a_kill_9(
    app: App, tmp_path: Path
) -> None:
    """The cron producer de-duplicates by sequence id, which the broker tracks per partition:
    a schedule's ticks all go to one partition, so a new leader's repeat is dropped."""
    topic = partitioned(app, "ticks")
    env = settings_env(app.settings, tmp_path / "record.jsonl")
    schedulers = [start_scheduler(env, tmp_path / f"scheduler-{n}.log") for n in range(2)]

    def ticks() -> dict[int, list[Envelope]]:
        return {
            n: [decode(m.data()) for m in read_topic(app.settings, partition_topic(topic, n))]
            for n in range(PARTITIONS)
        }

    def enqueued() -> list[Envelope]:
        return [envelope for found in ticks().values() for envelope in found]

    try:
        wait_until(lambda: len(enqueued()) >= 5, 60, interval=0.5)
        leader = int(enqueued()[-1].meta["pulsarjobs-scheduler"].rsplit(":", 1)[1])
        os.kill(leader, signal.SIGKILL)
        count = len(enqueued())
        wait_until(lambda: len(enqueued()) >= count + 10, 90, interval=0.5)
    finally:
        for process in schedulers:
            stop_process(process, 30)
    every_second = [e for e in enqueued() if e.type == "every_second"]
    per_id = Counter(envelope.id for envelope in every_second)
    assert [job_id for job_id, runs in per_id.items() if runs > 1] == []
    moments = sorted(e.meta["pulsarjobs-tick"] for e in every_second)
    seconds = [datetime.fromisoformat(m.replace("Z", "+00:00")) for m in moments]
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(seconds))
    holding = [n for n, found in ticks().items() if any(e.type == "every_second" for e in found)]
    assert len(holding) == 1, holding
