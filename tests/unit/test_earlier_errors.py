"""Every run's error, not only the last: a job that failed several times carries the errors of
its earlier runs (without their tracebacks) into its retries and its dead letter."""

from __future__ import annotations

from datetime import UTC, datetime

from pulsarjobs import App, current_job
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.testing import TestRunner
from pulsarjobs.wire.envelope import EARLIER_ERRORS_KEPT, Envelope, JobError, decode, encode

WHEN = datetime(2031, 5, 17, 8, 30, tzinfo=UTC)


def test_each_failed_run_keeps_its_error_and_the_earlier_ones_without_tracebacks() -> None:
    app = App(service_url="pulsar://unused:6650")

    @app.job(retry=RetryPolicy(max_attempts=4, initial_delay=1.0, jitter=0.0))
    def flaky() -> None:
        raise ConnectionError(f"attempt {current_job().envelope.attempt} lost the line")

    with TestRunner(app) as runner:
        flaky.enqueue()
        runner.run_all()
        (dead,) = runner.dead
    assert dead.last_error is not None and dead.last_error.traceback
    assert dead.last_error.message == "attempt 4 lost the line"
    assert [e.message for e in dead.earlier_errors] == [
        f"attempt {n} lost the line" for n in (1, 2, 3)
    ]
    assert {e.traceback for e in dead.earlier_errors} == {""}
    carried = decode(encode(dead)).earlier_errors  # they travel in the envelope (to the ms)
    assert [(e.type, e.message, e.worker) for e in carried] == [
        (e.type, e.message, e.worker) for e in dead.earlier_errors
    ]


def test_an_envelope_keeps_the_last_20_earlier_errors() -> None:
    env = Envelope(id="j", type="t", queue="default", created_at=WHEN)
    for n in range(30):
        env = env.failed_with(JobError("E", f"run {n}", "trace", WHEN, "w"))
    assert len(env.earlier_errors) == EARLIER_ERRORS_KEPT == 20
    assert [e.message for e in env.earlier_errors] == [f"run {n}" for n in range(9, 29)]
    assert env.last_error is not None and env.last_error.message == "run 29"
