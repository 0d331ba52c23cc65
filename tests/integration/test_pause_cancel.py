"""Pausing a queue, cancelling a job, running a waiting job now: what workers do about it."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from pulsarjobs import App, Inspector, JobCall, NotFound, PulsarJobsError, run_now
from pulsarjobs.transport.topics import topics_for
from tests.integration.helpers import read_topic, records, started, wait_until, worker_in_thread
from tests.integration.test_operations import cli, cli_json

QUIET_SECONDS = 3.0  # how long a job that must not run is watched not running


def queue_stats(app: App, queue: str):  # type: ignore[no-untyped-def]
    with Inspector(app.settings) as inspector:
        return next(stats for stats in inspector.queues() if stats.queue == queue)


def test_a_paused_queue_keeps_its_jobs_until_it_is_resumed(app: App, record: Path) -> None:
    with worker_in_thread(app, "default") as worker:
        assert worker.ready.wait(30)
        app.pause("default")
        wait_until(lambda: worker.paused == {"default"}, timeout=10)
        for n in range(5):
            app.enqueue(JobCall("default_job", (n,)))
        time.sleep(QUIET_SECONDS)
        assert started(record) == []
        stats = queue_stats(app, "default")
        assert stats.paused
        assert stats.waiting + stats.in_flight == 5  # stored: waiting, or held by the worker

        app.resume("default")
        wait_until(lambda: len(started(record)) == 5, timeout=30)
    assert not queue_stats(app, "default").paused


def test_a_worker_started_after_a_pause_does_not_take_the_queue(app: App, record: Path) -> None:
    app.pause("default")
    ids = [app.enqueue(JobCall("default_job", (n,))) for n in range(3)]
    with worker_in_thread(app, "default") as worker:
        assert worker.ready.wait(30)
        assert worker.paused == {"default"}
        time.sleep(QUIET_SECONDS)
        assert started(record) == []
        app.resume("default")
        wait_until(lambda: sorted(r["id"] for r in started(record)) == sorted(ids), timeout=30)


def test_a_paused_first_queue_lets_the_lower_one_run_in_strict_order(
    app: App, record: Path
) -> None:
    app.pause("critical")
    app.enqueue_many([JobCall("critical_job", (n,)) for n in range(3)])
    app.enqueue_many([JobCall("low_job", (n,)) for n in range(3)])
    with worker_in_thread(app, "critical,low") as worker:
        wait_until(lambda: len(started(record, "low_job")) == 3, timeout=30)
        assert started(record, "critical_job") == []
        app.resume("critical")
        wait_until(lambda: len(started(record, "critical_job")) == 3, timeout=30)
        wait_until(lambda: worker.stats.done == 6, timeout=30)  # started, then settled


def test_a_cancelled_scheduled_job_never_runs_while_others_do(app: App, record: Path) -> None:
    with worker_in_thread(app, "default") as worker:
        assert worker.ready.wait(30)
        doomed = app.enqueue(JobCall("scheduled", (1,)), in_=timedelta(seconds=3))
        kept = app.enqueue(JobCall("scheduled", (2,)), in_=timedelta(seconds=3))
        app.cancel(doomed)
        wait_until(lambda: worker.stats.cancelled == 1, timeout=30)
        wait_until(lambda: [r["id"] for r in started(record)] == [kept], timeout=30)
    assert queue_stats(app, "default").scheduled == 0  # the cancelled one was acknowledged


def test_a_cancelled_running_async_job_stops_and_is_not_retried(app: App, record: Path) -> None:
    with worker_in_thread(app, "default") as worker:
        job_id = app.enqueue(JobCall("hold", (60.0,)))
        wait_until(lambda: len(started(record)) == 1, timeout=30)
        app.cancel(job_id)
        wait_until(lambda: worker.stats.cancelled == 1, timeout=15)
        assert worker.busy == 0
        assert (worker.stats.retried, worker.stats.dead) == (0, 0)
    assert [r["event"] for r in records(record)] == ["start"]  # stopped: no "end"
    stats = queue_stats(app, "default")
    assert (stats.waiting, stats.scheduled, stats.in_flight) == (0, 0, 0)


def test_a_cancelled_running_sync_job_has_its_result_discarded(app: App, record: Path) -> None:
    """A thread cannot be stopped: the job runs to its end, but its failure is not retried."""
    with worker_in_thread(app, "default") as worker:
        job_id = app.enqueue(JobCall("hold_sync_then_fail", (2.0,)))
        wait_until(lambda: len(started(record)) == 1, timeout=30)
        app.cancel(job_id)
        wait_until(lambda: worker.stats.cancelled == 1, timeout=30)
        assert (worker.stats.retried, worker.stats.dead) == (0, 0)
    assert [r["event"] for r in records(record)] == ["start", "end"]
    stats = queue_stats(app, "default")
    assert (stats.waiting, stats.scheduled, stats.in_flight) == (0, 0, 0)


def test_a_job_enqueued_again_after_its_cancel_runs(app: App, record: Path) -> None:
    app.enqueue(JobCall("scheduled", (1,), job_id="report-42"), in_=timedelta(seconds=2))
    app.cancel("report-42")
    app.enqueue(JobCall("scheduled", (2,), job_id="report-42"))
    with worker_in_thread(app, "default") as worker:
        wait_until(lambda: worker.stats.cancelled == 1 and worker.stats.done == 1, timeout=30)
    assert [r["id"] for r in started(record)] == ["report-42"]


def test_run_now_runs_a_scheduled_job_now_and_once(app: App, record: Path) -> None:
    job_id = app.enqueue(JobCall("scheduled", (1,)), in_=timedelta(seconds=5))
    topic = topics_for(app.settings, "default").jobs
    (message,) = read_topic(app.settings, topic)
    message_id = f"{message.message_id().ledger_id()}:{message.message_id().entry_id()}"
    with worker_in_thread(app, "default") as worker:
        assert worker.ready.wait(30)
        with Inspector(app.settings) as inspector:
            assert run_now(inspector, "default", message_id) == job_id
        wait_until(lambda: len(started(record)) == 1, timeout=30)
        (run,) = started(record)
        assert (run["id"], run["run_at"]) == (job_id, None)  # due now, not in 5 s
        time.sleep(5)  # past the original's due time: acknowledged, no worker gets it
        assert len(started(record)) == 1 and worker.stats.cancelled == 0
    with Inspector(app.settings) as inspector, pytest.raises(NotFound, match="ran already"):
        run_now(inspector, "default", message_id)


def position_of_only_job(app: App) -> str:
    (message,) = read_topic(app.settings, topics_for(app.settings, "default").jobs)
    return f"{message.message_id().ledger_id()}:{message.message_id().entry_id()}"


def test_run_now_refuses_a_job_due_already_or_running_and_it_runs_once(
    app: App, record: Path
) -> None:
    job_id = app.enqueue(JobCall("hold", (2.0,)))  # due now: waiting for a worker
    position = position_of_only_job(app)
    with Inspector(app.settings) as inspector:
        with pytest.raises(PulsarJobsError, match="due already"):
            run_now(inspector, "default", position)
        with worker_in_thread(app, "default") as worker:
            wait_until(lambda: len(started(record)) == 1, timeout=30)
            with pytest.raises(PulsarJobsError, match="due already"):
                run_now(inspector, "default", position)  # running now
            wait_until(lambda: worker.stats.done == 1, timeout=30)
    assert worker.stats.cancelled == 0
    assert [r["id"] for r in started(record)] == [job_id]


def test_heartbeats_list_the_jobs_a_worker_runs_now(app: App, record: Path) -> None:
    with worker_in_thread(app, "default") as worker:
        job_id = app.enqueue(JobCall("hold", (60.0,)))
        wait_until(lambda: len(started(record)) == 1, timeout=30)
        with Inspector(app.settings) as inspector:

            def listed() -> bool:
                (status,) = inspector.workers()
                return [job.job_id for job in status.running] == [job_id]

            wait_until(listed, timeout=30, interval=0.5)
            (status,) = inspector.workers()
            assert (status.running[0].type, status.running[0].queue) == ("hold", "default")
        app.cancel(job_id)
        wait_until(lambda: worker.busy == 0, timeout=15)


def test_queues_are_paused_resumed_and_jobs_cancelled_from_the_command_line(
    app: App, record: Path
) -> None:
    settings = app.settings
    assert cli(settings, "queues", "pause", "default").exit_code == 0
    doomed = app.enqueue(JobCall("greet", ("Ada",)))
    kept = app.enqueue(JobCall("greet", ("Bob",)))
    (default,) = cli_json(settings, "queues")
    assert (default["queue"], default["paused"], default["waiting"]) == ("default", True, 2)
    assert "default (paused)" in cli(settings, "queues").stdout

    cancelled = cli(settings, "jobs", "cancel", doomed)
    assert cancelled.exit_code == 0 and f"Job {doomed}: cancel stored" in cancelled.stdout
    with worker_in_thread(app, "default") as worker:
        assert worker.ready.wait(30)
        assert cli(settings, "queues", "resume", "default").exit_code == 0
        wait_until(lambda: worker.stats.cancelled == 1 and worker.stats.done == 1, timeout=30)
    assert [r["id"] for r in started(record)] == [kept]
    (default,) = cli_json(settings, "queues")
    assert (default["paused"], default["waiting"]) == (False, 0)


def test_cancelling_an_id_no_job_is_known_by_says_what_it_did_not_check(app: App) -> None:
    cancelled = cli(app.settings, "jobs", "cancel", "no-such-job")
    assert cancelled.exit_code == 0
    assert "is cancelled." not in cancelled.stdout  # no job was seen to cancel
    assert "no worker runs it now" in cancelled.stdout
    assert "cannot tell whether a job with this id exists" in cancelled.stdout


def test_cancelling_a_running_job_names_its_worker(app: App, record: Path) -> None:
    job_id = app.jobs["hold"].enqueue(30.0)  # running until cancelled (an async run stops)
    with worker_in_thread(app, "default") as worker:
        wait_until(lambda: len(started(record)) == 1, timeout=30)
        # Its heartbeat lists it as running (one sent as the job was taken counts it busy, not
        # running yet: the cancel would rightly not name the worker).
        wait_until(lambda: running_ids(app) == [job_id], timeout=30)
        cancelled = cli(app.settings, "jobs", "cancel", job_id)
        wait_until(lambda: worker.stats.cancelled == 1, timeout=30)
    assert cancelled.exit_code == 0
    assert f"Job {job_id} is cancelled: it was running on {worker.name}" in cancelled.stdout


def test_pausing_a_queue_with_a_bad_name_says_so_in_one_line(app: App) -> None:
    result = cli(app.settings, "queues", "pause", "no/such")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: queue name 'no/such' must start")


def running_ids(app: App) -> list[str]:
    workers = cli_json(app.settings, "workers")
    return [job["job_id"] for worker in workers for job in worker["running"]]
