"""Pauses and cancels without a broker: their marks, old heartbeats, the feed's and the
executor's rules, and the in-memory TestRunner."""

from __future__ import annotations

import asyncio
import functools
import threading
from datetime import UTC, datetime, timedelta

import pytest

from pulsarjobs import App, JobCall, current_job
from pulsarjobs.clock import utc_now
from pulsarjobs.operations.cancels import Cancel
from pulsarjobs.operations.pauses import Pause
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.settings import Settings
from pulsarjobs.testing import TestRunner
from pulsarjobs.transport.backlog import parse_position
from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.wire.heartbeat import Heartbeat, RunningJob
from pulsarjobs.wire.verdicts import Outcome
from pulsarjobs.worker._running import CurrentRuns
from pulsarjobs.worker.execution import JobExecutor
from pulsarjobs.worker.feed import Feed, QueuePlan
from pulsarjobs.worker.judge import Judge
from tests.unit.test_feed import FakeConsumer, picked_queue, until

AT = datetime(2027, 1, 4, 12, 30, 15, 123456, tzinfo=UTC)


def test_marks_travel_as_json_and_come_back_equal() -> None:
    pause = Pause("critical", AT, "ada@host")
    assert Pause.decode(pause.encode()) == pause
    cancel = Cancel("job-1", AT, "ada@host")
    assert Cancel.decode(cancel.encode()) == cancel


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"queue": "q"}'])
def test_a_message_that_is_no_mark_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a pause"):
        Pause.decode(data)


def test_a_cancel_without_a_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="not a cancel"):
        Cancel.decode(b'{"job_id": "j", "cancelled_at": "2027-01-04T12:00:00", "by": "x"}')


def test_message_ids_are_read_as_ledger_and_entry() -> None:
    assert parse_position(" 12:3 ") == (12, 3)
    for bad in ("12", "a:b", ""):
        with pytest.raises(ValueError, match="ledger:entry"):
            parse_position(bad)


def heartbeat(**changes: object) -> Heartbeat:
    beat = Heartbeat(
        worker="w", host="h", pid=1, subscription="s", queues=("default",), concurrency=4,
        busy=1, processed=0, failed=0, rss_bytes=None, state="running", started_at=AT,
        sent_at=AT, interval=5.0,
    )  # fmt: skip
    return beat.with_changes(**changes)


def test_a_heartbeat_lists_the_jobs_running_and_comes_back_equal() -> None:
    beat = heartbeat(running=(RunningJob("j1", "send", "default", AT),))
    assert Heartbeat.decode(beat.encode()) == beat


def test_a_heartbeat_of_an_earlier_version_lists_no_running_jobs() -> None:
    old = heartbeat().encode().replace(b',"running":[]', b"")
    assert b'"running":[' not in old
    assert Heartbeat.decode(old).running == ()


def test_a_paused_queue_is_not_taken_and_counts_as_dry_in_strict_order() -> None:
    consumers = {"critical": FakeConsumer(["c1"]), "low": FakeConsumer(["l1"])}
    feed = Feed(QueuePlan.parse("critical,low"), consumers, 4)
    rings: list[int] = []
    feed.doorbell = rings.append
    feed.start()
    try:
        until(lambda: all(queue.waiting for queue in feed.queues))
        feed.set_paused("critical", True)
        assert rings[-1] == 0  # idle runners look again
        assert picked_queue(feed) == "low"
        assert feed.pick() is None and not feed.has_jobs()  # c1 is held, not taken
        feed.set_paused("critical", False)
        assert picked_queue(feed) == "critical"
    finally:
        feed.stop()


@pytest.fixture
def app() -> App:
    return App(Settings())


def executor_for(app: App) -> JobExecutor:
    current = CurrentRuns()
    return JobExecutor(app, Judge(app, "w", utc_now, current), current)


def test_a_running_async_job_is_stopped_by_its_cancel(app: App) -> None:
    begun = threading.Event()

    @app.job
    async def wait_long() -> None:
        begun.set()
        await asyncio.sleep(60)

    executor = executor_for(app)
    envelope = Envelope(id="j1", type="wait_long", queue="default", created_at=utc_now())

    async def scenario() -> str:
        work = executor.judge.before(envelope)
        assert not isinstance(work, Outcome)
        run = asyncio.ensure_future(executor.run(work, envelope, None))
        await asyncio.to_thread(begun.wait, 5)
        threading.Thread(target=executor.running.cancel, args=("j1", utc_now())).start()
        outcome = await asyncio.wait_for(run, 5)
        return outcome.kind

    assert asyncio.run(scenario()) == "cancelled"
    assert executor.running.now == {}


def test_a_running_sync_job_cancelled_has_its_failure_discarded(app: App) -> None:
    begun, cancelled = threading.Event(), threading.Event()

    @app.job
    def fails_after_cancel() -> None:
        begun.set()
        cancelled.wait(5)
        raise RuntimeError("would be retried")

    executor = executor_for(app)
    envelope = Envelope(id="j2", type="fails_after_cancel", queue="default", created_at=utc_now())
    work = executor.judge.before(envelope)
    assert isinstance(work, functools.partial)

    def cancel_once_begun() -> None:
        begun.wait(5)
        executor.running.cancel("j2", utc_now())
        cancelled.set()

    threading.Thread(target=cancel_once_begun).start()
    assert executor.run_here(work, envelope).kind == "cancelled"


def test_the_test_runner_drops_a_cancelled_job_and_its_retries(app: App) -> None:
    ran: list[str] = []

    @app.job(retry=RetryPolicy(max_attempts=3, initial_delay=10, jitter=0))
    def report(n: int) -> None:
        ran.append(f"{current_job().id}#{current_job().attempt}")
        raise RuntimeError("retry me")

    with TestRunner(app) as runner:
        later = app.enqueue(JobCall("report", (1,), job_id="later"), in_=timedelta(hours=1))
        retrying = app.enqueue(JobCall("report", (2,), job_id="retrying"))
        runner.run_next()  # its first attempt fails: a retry waits
        app.cancel(later)
        app.cancel(retrying)
        runner.advance(timedelta(minutes=1))
        again = app.enqueue(
            JobCall("report", (3,), job_id="later", retry=RetryPolicy(max_attempts=1))
        )
        runner.run_all()
    assert ran == ["retrying#1", "later#1"]
    assert sorted(envelope.id for envelope in runner.cancelled) == ["later", "retrying"]
    assert again == "later" and [envelope.id for envelope in runner.dead] == ["later"]
