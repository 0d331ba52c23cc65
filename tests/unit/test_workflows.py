"""Results and chains in memory (TestRunner settles through the worker's code), and their
wire formats."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from pulsarjobs.app import App
from pulsarjobs.errors import ConfigurationError, JobFailed, ResultTimeout
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.settings import Settings
from pulsarjobs.testing import TestRunner
from pulsarjobs.wire.envelope import (
    SCHEMA_DEFINITION,
    ArgumentError,
    Chain,
    Envelope,
    decode,
    encode,
)
from pulsarjobs.workflows.chains import next_link
from pulsarjobs.workflows.results import JobResult
from tests.unit.test_envelope import avro_datum, fastavro_bytes

KEEP = timedelta(minutes=5)
ONCE = RetryPolicy(max_attempts=1)


@pytest.fixture
def app() -> App:
    app = App(Settings())

    @app.job(keep_result=KEEP)
    def add(a: int, b: int) -> int:
        return a + b

    @app.job(keep_result=KEEP, retry=ONCE)
    def fails() -> None:
        raise KeyError("gone")

    @app.job(keep_result=KEEP)
    def returns_a_set() -> object:
        return {1}

    @app.job(retry=ONCE)
    def step(previous: str, name: str) -> str:
        if name == "broken":
            raise RuntimeError("broke")
        return f"{previous}>{name}"

    @app.job
    def start() -> str:
        return "start"

    @app.job
    def start_with_a_set() -> object:
        return {1}

    return app


@pytest.fixture
def runner(app: App) -> Iterator[TestRunner]:
    with TestRunner(app) as runner:
        yield runner


def test_a_kept_result_is_there_once_the_job_ran_and_gone_after_its_retention(
    app: App, runner: TestRunner
) -> None:
    job_id = app.jobs["add"].enqueue(2, 3)
    with pytest.raises(ResultTimeout):  # not run yet: under TestRunner, no waiting
        app.result(job_id, timeout=10)
    runner.run_all()
    assert app.result(job_id) == 5
    assert asyncio.run(app.result_async(job_id)) == 5
    runner.advance(KEEP)
    with pytest.raises(ResultTimeout):
        app.result(job_id)
    per_call = app.enqueue(app.jobs["start"].call().with_options(keep_result=KEEP))
    runner.run_all()
    assert app.result(per_call) == "start"  # a job declared without keep_result


def test_a_failure_and_an_unencodable_value_raise_job_failed(app: App, runner: TestRunner) -> None:
    failing, unencodable = app.jobs["fails"].enqueue(), app.jobs["returns_a_set"].enqueue()
    runner.run_all()
    with pytest.raises(JobFailed, match="KeyError: 'gone'") as failed:
        app.result(failing)
    assert 'raise KeyError("gone")' in failed.value.remote_traceback
    with pytest.raises(JobFailed, match="set is not a job argument") as failed:
        app.result(unencodable)
    assert failed.value.error_type == "pulsarjobs.UnencodableResult"
    assert runner.runs(unencodable) == 1 and len(runner.done) == 1  # ran once, done


def test_an_expired_or_cancelled_job_settles_with_a_failure(app: App, runner: TestRunner) -> None:
    add = app.jobs["add"]
    expired = app.enqueue(add.call(1, 1).with_options(expires_in=timedelta(minutes=1)))
    cancelled = add.enqueue(2, 2)
    app.cancel(cancelled)
    runner.advance(timedelta(minutes=2))
    runner.run_all()
    with pytest.raises(JobFailed) as failed:
        app.result(expired)
    assert failed.value.error_type == "pulsarjobs.Expired"
    with pytest.raises(JobFailed) as failed:
        app.result(cancelled)
    assert failed.value.error_type == "pulsarjobs.Cancelled"


def test_a_chain_passes_results_on_and_a_broken_link_stops_it(app: App, runner: TestRunner) -> None:
    step = app.jobs["step"]
    good = app.chain(app.jobs["start"].call(), step.call("b"), step.call("c"), pass_result=True,
                     keep_result=KEEP)  # fmt: skip
    bad = app.chain(app.jobs["start"].call(), step.call("broken"), step.call("never"),
                    pass_result=True, keep_result=KEEP)  # fmt: skip
    runner.run_all()
    assert app.result(good.last_id) == "start>b>c"
    with pytest.raises(JobFailed, match="chain link 2 of 3: step failed: broke"):
        app.result(bad.last_id)
    assert runner.runs(bad.last_id) == 0
    (letter,) = runner.dead_letters
    assert letter.properties["pulsarjobs-chain-link"] == "2 of 3"
    assert letter.properties["pulsarjobs-reason"] == "failed 1 of 1 attempts (chain link 2 of 3)"


def test_a_value_that_cannot_be_passed_on_stops_the_chain_at_once(
    app: App, runner: TestRunner
) -> None:
    chained = app.chain(
        app.jobs["start_with_a_set"].call(), app.jobs["step"].call("b"), pass_result=True
    )
    runner.run_all()
    (dead,) = runner.dead
    assert dead.id == chained.job_ids[0]
    assert dead.last_error is not None and dead.last_error.type == "pulsarjobs.UnpassableResult"
    assert runner.runs(chained.job_ids[0]) == 1


def test_a_chain_is_checked_where_it_is_made(app: App, runner: TestRunner) -> None:
    step = app.jobs["step"]
    with pytest.raises(ValueError, match="at least two"):
        app.chain(step.call("a", "b"))
    with pytest.raises(ArgumentError, match=r"chain link 2 \(step\): .* do not fit step"):
        app.chain(app.jobs["start"].call(), step.call("b"))  # nothing passed: one arg short
    with pytest.raises(ArgumentError, match=r"chain link 2 \(step\): .* do not fit step"):
        app.chain(app.jobs["start"].call(), step.call("a", "b"), pass_result=True)  # one too many
    assert runner.pending == []
    with pytest.raises(ConfigurationError, match="keep_result must be positive"):
        app.job(name="never", keep_result=timedelta(0))(lambda: None)


def test_an_envelope_carries_its_chain_and_keep_result_through_avro() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    nxt = Envelope(id="n", type="b", queue="q", args=(1,), created_at=created, keep_result=60.0)
    envelope = Envelope(
        id="j", type="a", queue="q", created_at=created, keep_result=1.5,
        chain=Chain("c", 1, 2, True, (nxt,)),
    )  # fmt: skip
    assert decode(encode(envelope)) == envelope


def test_a_next_link_names_the_link_that_published_it_and_older_links_read_as_first() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    third = Envelope(id="t", type="c", queue="q", created_at=created)
    second = Envelope(id="s", type="b", queue="q", created_at=created)
    first = Envelope(id="f", type="a", queue="q", created_at=created,
                     chain=Chain("c", 1, 3, False, (second, third)))  # fmt: skip
    published = next_link(first, None)
    assert published is not None and published.chain is not None
    assert (published.id, published.chain.previous) == ("s", "f")
    assert decode(encode(published)) == published
    then = next_link(published, None)
    assert then is not None and then.chain is not None and then.chain.previous == "s"
    # Written before a chain said its previous link: read as saying none.
    older = json.loads(json.dumps(SCHEMA_DEFINITION))
    chain_type = next(f for f in older["fields"][-1]["type"][1]["fields"] if f["name"] == "chain")
    chain_type["type"][1]["fields"].pop()  # `previous`, the last
    assert chain_type["type"][1]["fields"][-1]["name"] == "next"
    datum = avro_datum(published)
    del datum["extras"]["chain"]["previous"]
    read = decode(fastavro_bytes(older, datum), writer_schema=json.dumps(older))
    assert read.chain == dataclasses.replace(published.chain, previous=None)


def test_a_result_round_trips_and_says_why_a_value_cannot_be_kept() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    result = JobResult("j", "t", now, now + KEEP, {"a": [1, b"x", None]})
    assert JobResult.decode(result.encode()) == result
    with pytest.raises(ValueError, match="not a job result"):
        JobResult.decode(b"\x01")
