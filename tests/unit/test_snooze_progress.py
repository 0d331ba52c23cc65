"""Snooze and progress in the in-memory TestRunner: the worker's own JobExecutor and Settler."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from pulsarjobs import App, Progress, Snooze, current_job
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.testing import TestRunner
from pulsarjobs.wire.heartbeat import Heartbeat, RunningJob
from pulsarjobs.worker._running import CurrentRuns


def test_a_snoozed_job_runs_again_when_due_with_the_same_attempt(
    app: App, runner: TestRunner
) -> None:
    runs: list[tuple[int, int, datetime]] = []

    @app.job(max_attempts=1)
    def poll() -> None:
        job = current_job()
        runs.append((job.attempt, job.snoozes, runner.now))
        if job.snoozes < 3:
            raise Snooze(timedelta(minutes=5) if job.snoozes else 30.0)

    started = runner.now
    poll.enqueue()
    first = runner.run_next()
    assert first is not None and first.kind == "snoozed"
    [later] = runner.pending
    assert (later.attempt, later.snoozes) == (1, 1)
    assert later.run_at is not None
    assert (
        timedelta(0) <= later.run_at - (started + timedelta(seconds=30)) < timedelta(seconds=0.001)
    )
    assert runner.run_next() is None  # not due yet: never early
    runner.run_all()
    assert [(attempt, snoozes) for attempt, snoozes, _ in runs] == [(1, 0), (1, 1), (1, 2), (1, 3)]
    waited = [(at - started).total_seconds() for _, _, at in runs]
    assert waited == pytest.approx([0, 30, 330, 630], abs=0.01)
    [done] = runner.done
    assert (done.attempt, done.snoozes, done.last_error) == (1, 3, None)
    assert runner.dead == []


def test_snoozing_past_max_snoozes_dead_letters_the_job(app: App, runner: TestRunner) -> None:
    @app.job(max_snoozes=2)
    async def wait_for_payment() -> None:
        await asyncio.sleep(0)
        raise Snooze(datetime(2000, 1, 1, tzinfo=UTC))  # gone by: due at once

    wait_for_payment.enqueue()
    runner.run_all()
    assert runner.runs(wait_for_payment) == 3
    [dead] = runner.dead
    assert (dead.attempt, dead.snoozes) == (1, 2)
    assert (
        runner.outcomes[-1].reason
        == "TooManySnoozes: snoozed 2 times already, its max_snoozes is 2"
    )
    [letter] = runner.dead_letters
    assert letter.properties["pulsarjobs-reason"] == runner.outcomes[-1].reason


@pytest.mark.parametrize(
    ("delay", "error"),
    [
        (-1, ValueError),
        (timedelta(seconds=-1), ValueError),
        (float("inf"), ValueError),
        (datetime(2030, 1, 1), ValueError),  # naive
        ("5m", TypeError),
    ],
)
def test_snooze_refuses_a_delay_it_cannot_keep(delay: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="Snooze"):
        Snooze(delay)  # type: ignore[arg-type]


def test_max_snoozes_must_not_be_negative(app: App) -> None:
    with pytest.raises(ConfigurationError, match="max_snoozes"):

        @app.job(max_snoozes=-1)
        def nothing() -> None: ...


def test_current_job_reads_the_envelope_and_takes_progress(app: App, runner: TestRunner) -> None:
    seen = []

    @app.job
    def resize(path: str) -> None:
        job = current_job()
        seen.append((job.type, job.args, job.envelope.id == job.id))
        for done in range(3):
            job.progress(done + 1, 3, f"pass {done + 1}")
        with pytest.raises(TypeError, match="progress takes numbers"):
            job.progress("half")  # type: ignore[arg-type]

    resize.enqueue("a.png")
    runner.run_all()
    assert seen == [("resize", ("a.png",), True)]
    with pytest.raises(RuntimeError, match="only available inside a running job"):
        current_job()


def test_a_jobs_last_progress_stays_listed_once_it_ended() -> None:
    from pulsarjobs.wire.envelope import Envelope
    from pulsarjobs.worker._running import Run

    running = CurrentRuns()
    run = Run(Envelope(id="j1", type="render", queue="video"), 0.0, None)
    running.start(run)
    run.progress = (40, 80, "frames")
    [now] = running.listed(10)
    assert now.progress == Progress(40, 80, "frames") and now.ended_at is None
    running.end(run)
    assert running.listed(10) == ()
    [ended] = running.ended_lately()
    assert (ended.job_id, ended.progress, ended.ended_at is not None) == (
        "j1",
        Progress(40, 80, "frames"),
        True,
    )
    assert str(ended.progress) == "40 of 80 (50%): frames"


def test_progress_travels_in_a_heartbeat() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    job = RunningJob("j", "render", "video", at, Progress(3, None, "x"), ended_at=at)
    running = (RunningJob("k", "t", "q", at, Progress(1.5, 2)),)
    beat = Heartbeat("w", "h", 1, "s", ("video",), 1, 0, 0, 0, None, "running", at, at, 5.0,
                     running=running, ended=(job,))  # fmt: skip
    assert Heartbeat.decode(beat.encode()) == beat
