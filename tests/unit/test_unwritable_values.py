"""Values Avro cannot write — a text with a lone surrogate, a list that holds itself — as
arguments, results and errors: a clear error or a dead letter, never a job run over and over."""

from datetime import timedelta

import pytest

from pulsarjobs.app import App
from pulsarjobs.errors import JobFailed
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.testing import TestRunner
from pulsarjobs.wire.envelope import ArgumentError

SURROGATE = b"report-\xff.csv".decode("utf-8", "surrogateescape")  # as os.listdir may give it


def holds_itself() -> list[object]:
    loop: list[object] = [1]
    loop.append(loop)
    return loop


def test_such_arguments_are_refused_at_enqueue(app: App, runner: TestRunner) -> None:
    @app.job
    def load(name: object) -> None: ...

    with pytest.raises(ArgumentError, match=r"job 'load': a text holds '\\udcff'"):
        load.enqueue(SURROGATE)
    with pytest.raises(ArgumentError, match="holds itself"):
        load.enqueue(holds_itself())
    assert runner.pending == []


def test_an_error_whose_message_has_a_lone_surrogate_is_dead_lettered_once(
    app: App, runner: TestRunner
) -> None:
    @app.job(max_attempts=1)
    def load() -> None:
        raise FileNotFoundError(f"no {SURROGATE}")

    load.enqueue()
    runner.run_all()
    assert runner.runs(load) == 1
    [dead] = runner.dead
    assert dead.last_error is not None and dead.last_error.message == "no report-\\udcff.csv"


@pytest.mark.parametrize("value", [SURROGATE, holds_itself()], ids=["surrogate", "itself"])
def test_a_result_that_cannot_be_kept_fails_its_job_once(
    app: App, runner: TestRunner, value: object
) -> None:
    @app.job(keep_result=timedelta(hours=1))
    def compute() -> object:
        return value

    job_id = compute.enqueue()
    runner.run_all()
    assert runner.runs(compute) == 1
    with pytest.raises(JobFailed, match="UnencodableResult"):
        app.result(job_id)


def test_an_error_quoting_a_huge_value_is_cut_and_the_job_retried_as_asked(
    app: App, runner: TestRunner
) -> None:
    @app.job(retry=RetryPolicy(max_attempts=3, initial_delay=1, jitter=0))
    def import_rows() -> None:
        raise ValueError("bad row: " + "z" * 6_000_000)  # more than a message may carry

    import_rows.enqueue()
    runner.run_all()
    assert runner.runs(import_rows) == 3
    [dead] = runner.dead
    assert dead.last_error is not None
    assert dead.last_error.message.endswith("… (5998009 more characters)")
    assert len(dead.last_error.message) < 2_100
