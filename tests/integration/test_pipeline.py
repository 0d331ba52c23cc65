"""The job pipeline on a real broker: enqueue, run, retry, dead letters, poison input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pulsar
import pytest

from pulsarjobs.app import App, JobCall
from pulsarjobs.errors import BrokerUnavailable, PayloadTooLarge
from pulsarjobs.settings import Settings
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import ArgumentError, Envelope, decode, encode, new_id
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    read_topic,
    settings_env,
    started,
    wait_until,
    worker_in_thread,
)
from tests.unit.test_flat_envelopes import FLAT_SCHEMA_TEXT, flat_record


def dead_letters(app: App, queue: str = "default") -> list[pulsar.Message]:
    return read_topic(app.settings, topics_for(app.settings, queue).dead)


def test_enqueued_job_runs_once_with_its_arguments(app: App, record: Path) -> None:
    job_id = app.jobs["greet"].enqueue("Ada", punctuation="?")
    with worker_in_thread(app) as worker:
        wait_until(lambda: len(started(record)) == 1, 30)
    runs = started(record)
    assert [(r["id"], r["greeting"]) for r in runs] == [(job_id, "hello Ada?")]
    assert worker.stats.done == 1


def test_failing_twice_then_succeeding_runs_three_times_with_growing_gaps(
    app: App, record: Path
) -> None:
    app.jobs["fails_twice"].enqueue()
    with worker_in_thread(app):
        wait_until(lambda: len(started(record)) == 3, 30)
        runs = started(record)
    assert [r["attempt"] for r in runs] == [1, 2, 3]
    first_gap = runs[1]["t"] - runs[0]["t"]
    second_gap = runs[2]["t"] - runs[1]["t"]
    print(f"gaps between runs: {first_gap:.3f} s, {second_gap:.3f} s (policy: 0.5 s, 1.0 s)")
    assert first_gap >= 0.5
    assert second_gap >= 1.0
    assert second_gap > first_gap
    assert dead_letters(app) == []


def test_always_failing_job_lands_in_dead_letters_and_stays_after_restart(
    broker: BrokerUnderTest, app: App, record: Path
) -> None:
    job_id = app.jobs["always_fails"].enqueue("disk full")
    with worker_in_thread(app):
        wait_until(lambda: len(dead_letters(app)) == 1, 30)
    assert [r["attempt"] for r in started(record)] == [1, 2, 3]
    broker.restart()
    (letter,) = dead_letters(app)
    dead = decode(letter.data())
    assert dead.id == job_id
    assert dead.attempt == 3
    assert dead.last_error is not None
    assert (dead.last_error.type, dead.last_error.message) == ("ValueError", "disk full")
    assert "raise ValueError(reason)" in dead.last_error.traceback
    assert letter.properties()["pulsarjobs-reason"] == "failed 3 of 3 attempts"


def test_broker_restart_while_retrying_keeps_the_attempt_count(
    broker: BrokerUnderTest, app: App, record: Path
) -> None:
    app.jobs["fails_slowly"].enqueue()
    with worker_in_thread(app):
        wait_until(lambda: len(started(record)) == 1, 30)
        time.sleep(0.5)  # the first run is settled: its retry waits 2 s on the broker
        broker.restart()
        wait_until(lambda: len(dead_letters(app)) == 1, 90, interval=1.0)
    assert [r["attempt"] for r in started(record)] == [1, 2, 3, 4]
    assert decode(dead_letters(app)[0].data()).attempt == 4


def test_poison_messages_are_dead_lettered_with_reasons_and_good_jobs_run(
    app: App, record: Path
) -> None:
    topic = topics_for(app.settings, "default").jobs
    app.jobs["greet"].enqueue("before")  # also creates the queue's subscription
    client = app.connection.client
    raw = client.create_producer(topic)  # no schema: anything goes
    raw.send(os.urandom(64))
    raw.send(json.dumps({"type": "greet", "args": ["json"]}).encode())
    app.enqueue(JobCall("no_such_job"))
    misfit = app.envelope(app.jobs["greet"].call("x")).replace(args=(1, 2, 3, 4))
    app.publish_envelope(misfit).result()  # as a producer that declares `greet` otherwise would
    app.jobs["greet"].enqueue("after")
    with worker_in_thread(app) as worker:
        wait_until(lambda: len(dead_letters(app)) == 4 and len(started(record)) == 2, 30)
        assert worker.stats.dead == 4
    reasons = sorted(m.properties()["pulsarjobs-reason"].split(":")[0] for m in dead_letters(app))
    assert reasons == ["BadArguments", "Undecodable", "Undecodable", "UnknownJobType"]
    assert sorted(r["greeting"] for r in started(record)) == ["hello after!", "hello before!"]


def test_an_argument_not_of_its_annotated_type_from_another_producer_is_dead_at_once(
    app: App, record: Path
) -> None:
    # The command line without the app's code, and a producer that sends envelopes as built
    # elsewhere (Go, Java): neither checks the types.
    sent = subprocess.run(
        [sys.executable, "-m", "pulsarjobs", "enqueue", "always_fails", "--args", "[123]"],
        env=settings_env(app.settings, record),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    hold = app.jobs["hold"]
    app.publish_envelope(app.envelope(hold.call(0.1)).replace(args=("0.1",))).result()
    hold.enqueue(0)  # an int is a float: it runs
    with worker_in_thread(app) as worker:
        wait_until(lambda: len(dead_letters(app)) == 2 and len(started(record)) == 1, 30)
        time.sleep(1.5)  # a retry of always_fails would have run by now (its backoff: 0.5 s)
        assert (worker.stats.dead, worker.stats.retried, worker.stats.done) == (2, 0, 1)
    letters = dead_letters(app)
    reasons = {decode(m.data()).type: m.properties()["pulsarjobs-reason"] for m in letters}
    always_fails = app.jobs["always_fails"]
    assert reasons == {
        "always_fails": f"BadArguments: always_fails{always_fails.signature}: args[0] (reason): "
        "expected str, got int 123",
        "hold": f"BadArguments: hold{hold.signature}: args[0] (seconds): expected float, "
        "got str '0.1'",
    }
    assert [run["type"] for run in started(record)] == ["hold"]  # the int, for a float


def test_sync_and_async_handlers_run_concurrently(app: App, record: Path) -> None:
    app.enqueue_many([app.jobs["sync_overlap"].call() for _ in range(12)])
    app.enqueue_many([app.jobs["async_overlap"].call() for _ in range(12)])
    with worker_in_thread(app, concurrency=6):
        wait_until(lambda: len(started(record)) == 24, 60)
    overlap = max(r["running"] for r in started(record))
    assert 1 < overlap <= 6


def test_a_job_over_its_timeout_is_cancelled_and_fails(app: App, record: Path) -> None:
    app.jobs["too_slow_async"].enqueue()
    app.jobs["too_slow_sync"].enqueue()
    with worker_in_thread(app):
        wait_until(lambda: len(dead_letters(app)) == 2, 30)
    errors = {decode(m.data()).type: decode(m.data()).last_error for m in dead_letters(app)}
    assert {error.type for error in errors.values() if error} == {"pulsarjobs.errors.JobTimeout"}
    assert "timeout of 0.2 s" in errors["too_slow_async"].message  # type: ignore[union-attr]
    ended = [r for r in json_lines(record) if r["event"] == "end"]
    assert not [r for r in ended if r["type"] == "too_slow_async"]  # cancelled, never finished


def test_enqueue_refuses_what_it_cannot_store(app: App) -> None:
    with pytest.raises(PayloadTooLarge, match="larger than"):
        app.jobs["greet"].enqueue("x" * (6 * 1024 * 1024))
    with pytest.raises(ArgumentError, match=r"args\[0\]"):
        app.jobs["greet"].enqueue({1, 2})  # type: ignore[arg-type]


def test_a_job_just_under_the_size_limit_is_stored_and_runs(app: App, record: Path) -> None:
    # Within 5 MiB of the broker's limit, with room for its metadata; over 5 MiB with it, a
    # bookie's default frame: that bookie refused it, and the broker retried the write for good
    # while the enqueue timed out.
    name = "x" * (app.settings.max_payload - 100)
    job_id = app.jobs["greet"].enqueue(name)
    with worker_in_thread(app):
        wait_until(lambda: len(started(record)) == 1, 60)
    [run] = started(record)
    assert (run["id"], len(run["greeting"])) == (job_id, len(f"hello {name}!"))


def test_one_job_that_cannot_be_stored_fails_its_enqueue_many(app: App) -> None:
    greet = app.jobs["greet"]
    calls = [greet.call("first"), greet.call("x" * (6 * 1024 * 1024)), greet.call("last")]
    with pytest.raises(PayloadTooLarge, match="larger than"):
        app.enqueue_many(calls)


def test_enqueue_to_an_unreachable_broker_raises_naming_the_url() -> None:
    down = App(Settings(service_url="pulsar://127.0.0.1:1", admin_url="http://127.0.0.1:1"))
    with pytest.raises(BrokerUnavailable, match=r"pulsar://127\.0\.0\.1:1"):
        down.enqueue(JobCall("greet", args=("nobody",)))
    down.close()


def test_envelope_schema_is_registered_and_evolved_writers_are_read(app: App, record: Path) -> None:
    app.jobs["greet"].enqueue("v1")
    topic = topics_for(app.settings, "default").jobs
    path = topic.removeprefix("persistent://")
    schema = httpx.get(f"{app.settings.admin_url}/admin/v2/schemas/{path}/schema").json()
    assert schema["type"] == "AVRO"
    assert json.loads(schema["data"])["name"] == "JobEnvelope"
    # A producer on a newer schema (one more optional field) publishes to the same topic.
    newer = json.loads(schema["data"])
    newer["fields"].append({"name": "priority", "type": ["null", "int"], "default": None})
    newer_schema = pulsar.schema.AvroSchema(None, schema_definition=newer)
    producer = app.connection.client.create_producer(topic, schema=newer_schema)
    datum = evolved_datum(Envelope(id=new_id(), type="greet", queue="default", args=("v2",)))
    producer.send({**datum, "priority": 5})
    with worker_in_thread(app):
        wait_until(lambda: len(started(record)) == 2, 30)
    assert sorted(r["greeting"] for r in started(record)) == ["hello v1!", "hello v2!"]


def test_jobs_stored_before_extras_run_whole_after_the_upgrade(app: App, record: Path) -> None:
    """A topic whose jobs were written with the envelope before `extras` (its fields at the
    top level): the broker takes today's schema beside that one, and the worker runs the old
    job with what it carried (here, a kept result and a timeout)."""
    topic = topics_for(app.settings, "default").jobs
    app.connection.client.subscribe(topic, app.settings.subscription,
                                    consumer_type=pulsar.ConsumerType.Shared).close()  # fmt: skip
    flat = json.loads(FLAT_SCHEMA_TEXT)
    producer = app.connection.client.create_producer(
        topic, schema=pulsar.schema.AvroSchema(None, schema_definition=flat)
    )
    old = Envelope(id=new_id(), type="greet", queue="default", args=("v1",), timeout=30.0,
                   keep_result=600.0)  # fmt: skip
    producer.send(flat_record(evolved_datum(old)))
    producer.close()
    app.jobs["greet"].enqueue("v2")
    with worker_in_thread(app):
        wait_until(lambda: len(started(record)) == 2, 30)
        assert app.result(old.id, timeout=30) is None  # kept: greet returns nothing
    assert sorted(r["greeting"] for r in started(record)) == ["hello v1!", "hello v2!"]


def evolved_datum(envelope: Envelope) -> dict[str, object]:
    """The envelope as the Avro record a generic Avro producer would send."""
    import io

    import fastavro

    from pulsarjobs.wire.envelope import SCHEMA_JSON

    parsed = fastavro.parse_schema(json.loads(SCHEMA_JSON))
    record = fastavro.schemaless_reader(io.BytesIO(encode(envelope)), parsed)
    assert isinstance(record, dict)
    return record


def json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def duplicates(ids: list[str]) -> int:
    return sum(count - 1 for count in Counter(ids).values() if count > 1)


def test_shutdown_hands_back_a_job_that_outlives_the_grace_period(app: App, record: Path) -> None:
    job_id = app.jobs["hold"].enqueue(2.0)
    with worker_in_thread(app, shutdown_timeout=0.3):
        wait_until(lambda: len(started(record)) == 1, 30)
    # The first worker gave up on it; the next one runs it to the end.
    with worker_in_thread(app):
        wait_until(lambda: any(r["event"] == "end" for r in json_lines(record)), 30)
    runs = [(r["event"], r["id"]) for r in json_lines(record)]
    assert runs == [("start", job_id), ("start", job_id), ("end", job_id)]


def test_a_quiet_worker_finishes_its_job_and_fetches_no_more(app: App, record: Path) -> None:
    first = app.jobs["hold"].enqueue(0.5)
    with worker_in_thread(app) as worker:
        wait_until(lambda: len(started(record)) == 1, 30)
        worker.quiet()
        second = app.jobs["greet"].enqueue("later")
        wait_until(lambda: any(r["event"] == "end" for r in json_lines(record)), 30)
        time.sleep(1.0)  # time enough to fetch, were it not quiet
        assert [r["id"] for r in started(record)] == [first]
    with worker_in_thread(app):
        wait_until(lambda: len(started(record)) == 2, 30)
    assert started(record)[-1]["id"] == second


def test_a_job_enqueued_again_with_the_same_id_runs_again_on_a_warm_worker(
    app: App, record: Path
) -> None:
    """Enqueueing an id that exists makes a new job (uniqueness is opt-in): a worker that
    settled the first must not take the second for a redelivery of it."""
    calls = [app.jobs["greet"].call(f"w{i}").with_options(job_id=f"w{i}") for i in range(200)]
    app.enqueue_many(calls)
    with worker_in_thread(app, concurrency=8) as worker:
        wait_until(lambda: worker.stats.done == 200, 60)
        app.enqueue_many(calls)
        wait_until(lambda: worker.stats.done == 400, 60)
        assert worker.stats.duplicates == 0
    runs = Counter(r["id"] for r in started(record))
    assert runs == {f"w{i}": 2 for i in range(200)}
