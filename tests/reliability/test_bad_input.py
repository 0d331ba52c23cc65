"""Scenario 9: bad input. A producer gets a clear one-line error; a worker dead-letters what is
no job it can run, with the reason, keeps running, and runs the good jobs around it. The decoder
and the settle path are fuzzed with Hypothesis."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections import Counter

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsarjobs import App, JobCall, Settings
from pulsarjobs.errors import PayloadTooLarge
from pulsarjobs.testing import TestRunner
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import (
    ArgumentError,
    EnvelopeError,
    _to_record,
    decode,
    encode,
    schema_text,
)
from tests.integration.helpers import wait_until
from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.reliability


def newer_schema_datum(app: App) -> bytes:
    """A job written with a newer schema (a field added at the end) that this worker does not
    know, sent without a schema version: the reader cannot tell where it ends."""
    schema = json.loads(schema_text())
    schema["fields"].append({"name": "added_later", "type": "long", "default": 0})
    record = {**_to_record(app.envelope(app.jobs["counts"].call(1))), "added_later": 7}
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def test_bad_input(scenario: Scenario) -> None:
    app, counts = scenario.app, scenario.app.jobs["counts"]
    refused = {
        # Arguments are type-checked before the size: pad a well-typed job past the limit.
        "oversized": (counts.call(1).with_options(meta={"pad": "x" * 6_000_000}), PayloadTooLarge),
        "not encodable": (counts.call(object()), ArgumentError),  # type: ignore[arg-type]
        "out of range": (counts.call(2**70), ArgumentError),
        "does not fit": (JobCall("counts", args=(1, 2)), ArgumentError),
    }
    for name, (call, error) in refused.items():
        with pytest.raises(error) as raised:
            app.enqueue(call)
        message = str(raised.value)
        assert message and "\n" not in message, (name, message)
        print(f"{name}: {type(raised.value).__name__}: {message[:120]}")

    good = scenario.enqueue([counts.call(n) for n in range(50)])
    supervisor = scenario.start_worker("--processes", "2", "--concurrency", "4")
    raw = app.connection.client.create_producer(topics_for(app.settings, "default").jobs)
    valid = encode(app.envelope(counts.call(1)))
    bad = [os.urandom(n) for n in (0, 1, 7, 64, 1000)]
    bad += [valid[:cut] for cut in (1, len(valid) // 2, len(valid) - 1)]
    bad += [newer_schema_datum(app)]
    for data in bad:
        raw.send(data)
    raw.close()
    unknown = app.enqueue(JobCall("declared_by_nobody"))  # another service's job, perhaps
    misfit = app.envelope(counts.call(1)).replace(args=("one", "two"))
    app.publish_envelope(misfit).result()  # from a producer that declares `counts` otherwise
    good += scenario.enqueue([counts.call(n) for n in range(50)])
    expected_dead = len(bad) + 2

    wait_until(lambda: len(scenario.completed()) >= len(good), 120)
    wait_until(lambda: len(scenario.dead_letters()) >= expected_dead, 120, interval=1)
    letters = scenario.dead_letters()
    assert supervisor.poll() is None, scenario.logs()
    assert "worker process died" not in scenario.logs()  # never crashed
    kinds = Counter(reason.split(":")[0] for reason in letters.values())
    assert kinds == {"Undecodable": len(bad), "UnknownJobType": 1, "BadArguments": 1}, letters
    assert letters[unknown].startswith("UnknownJobType: no job 'declared_by_nobody'")
    assert letters[misfit.id].startswith("BadArguments: counts(n:")
    made = scenario.check(letters)
    assert (made.lost, made.duplicates) == (0, 0), made.lost_ids


@pytest.fixture(scope="module")
def fuzz_app() -> App:
    app = App(Settings())

    @app.job
    def counts(n: int) -> None:
        pass

    return app


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_the_decoder_refuses_any_bytes_with_an_envelope_error_only(data: bytes) -> None:
    try:
        decode(data)
    except EnvelopeError as exc:
        assert str(exc).startswith("not a job envelope")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_damaged_envelope_decodes_or_is_refused_with_an_envelope_error(
    fuzz_app: App, data: st.DataObject
) -> None:
    valid = bytearray(encode(fuzz_app.envelope(JobCall("counts", args=(1,), meta={"k": "v"}))))
    position = data.draw(st.integers(0, len(valid) - 1))
    damage = data.draw(st.sampled_from(["cut", "flip", "insert"]))
    if damage == "cut":
        del valid[position:]
    elif damage == "flip":
        valid[position] ^= data.draw(st.integers(1, 255))
    else:
        valid[position:position] = data.draw(st.binary(min_size=1, max_size=8))
    with contextlib.suppress(EnvelopeError):
        decode(bytes(valid))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=5))
def test_what_is_no_job_is_dead_lettered_with_its_own_bytes(
    fuzz_app: App, messages: list[bytes]
) -> None:
    topic = topics_for(fuzz_app.settings, "default").jobs
    with TestRunner(fuzz_app) as runner:
        for message in messages:
            fuzz_app.connection.publish(topic, message)
        runner.run_all()  # the worker's decode and settle: it must not raise
        settled = len(runner.dead_letters) + len(runner.done)
        assert settled == len(messages)
        for letter in runner.dead_letters:
            assert letter.data in messages
            assert letter.properties["pulsarjobs-reason"].startswith(("Undecodable", "Bad"))
