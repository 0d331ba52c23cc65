"""OpenTelemetry across a real broker: one trace from the code that enqueues a job, through its
producer span, to each run's span — a retry included — with the error recorded; and nothing at
all without the extra."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, StatusCode

from pulsarjobs import App, RetryPolicy, current_job, tracing
from pulsarjobs.operations.inspector import Inspector
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, wait_until, worker_in_thread

ONE_RETRY = RetryPolicy(max_attempts=2, initial_delay=0.2, jitter=0.0)
ran_in: list[tuple[int, int]] = []  # (attempt, trace id) of each run, as the job saw it


class Switch(Sampler):
    """Samples every span until turned off: the provider stays set (OpenTelemetry allows no
    second one in a process), and later tests then record nothing."""

    def __init__(self) -> None:
        self.sampler: Sampler = ALWAYS_ON

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return self.sampler.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return "Switch"


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider, exporting to memory while these tests run."""
    found, switch = InMemorySpanExporter(), Switch()
    provider = TracerProvider(sampler=switch)
    provider.add_span_processor(SimpleSpanProcessor(found))
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        pytest.skip("another tracer provider was set in this process")
    yield found
    switch.sampler = ALWAYS_OFF
    found.clear()


def traced_app(broker: BrokerUnderTest) -> App:
    app = App(fresh_settings(broker))

    @app.job(queue="traced", retry=ONE_RETRY)
    def flaky(order: int) -> None:
        job = current_job()
        ran_in.append((job.attempt, trace.get_current_span().get_span_context().trace_id))
        if job.attempt == 1:
            raise ConnectionError(f"order {order}: the warehouse did not answer")

    @app.job(queue="traced", max_attempts=1)
    def doomed() -> None:
        raise ValueError("no such customer")

    return app


def spans_named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def test_one_trace_runs_from_the_enqueuing_code_through_a_retry_to_the_last_run(
    broker: BrokerUnderTest, exporter: InMemorySpanExporter
) -> None:
    exporter.clear()
    ran_in.clear()
    app = traced_app(broker)
    tracer = trace.get_tracer("checkout")
    with tracer.start_as_current_span("checkout") as checkout:
        app.enqueue(app.jobs["flaky"].call(42))
        app.enqueue(app.jobs["doomed"].call())
    trace_id = checkout.get_span_context().trace_id
    with Inspector(app.settings) as inspector:
        with worker_in_thread(app, queues="traced"):
            wait_until(lambda: len(spans_named(exporter, "run flaky")) == 2, 60)
            wait_until(lambda: inspector.dead_count("traced") == 1, 60)
        (letter,) = inspector.dead_letters("traced")
    app.close()

    (enqueued,) = spans_named(exporter, "enqueue flaky")
    assert enqueued.kind == SpanKind.PRODUCER
    assert enqueued.context is not None and enqueued.context.trace_id == trace_id
    assert (
        enqueued.parent is not None
        and enqueued.parent.span_id == checkout.get_span_context().span_id
    )
    first, second = sorted(
        spans_named(exporter, "run flaky"), key=lambda span: span.start_time or 0
    )
    for run in (first, second):  # both attempts: children of the producer span, in its trace
        assert run.kind == SpanKind.CONSUMER
        assert run.context is not None and run.context.trace_id == trace_id
        assert run.parent is not None and run.parent.span_id == enqueued.context.span_id
        assert run.attributes is not None
        assert run.attributes["pulsarjobs.job.type"] == "flaky"
        assert run.attributes["messaging.destination.name"] == "traced"
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["pulsarjobs.job.id"] == second.attributes["pulsarjobs.job.id"]
    assert (
        first.attributes["pulsarjobs.job.attempt"],
        second.attributes["pulsarjobs.job.attempt"],
    ) == (1, 2)
    assert first.attributes["pulsarjobs.job.outcome"] == "retry"
    assert first.status.status_code == StatusCode.ERROR
    (error,) = [event for event in first.events if event.name == "exception"]
    assert error.attributes is not None and error.attributes["exception.type"] == "ConnectionError"
    assert second.attributes["pulsarjobs.job.outcome"] == "done"
    assert second.status.status_code != StatusCode.ERROR
    assert str(second.attributes["pulsarjobs.job.previous_error"]).startswith("ConnectionError")
    assert sorted(ran_in) == [(1, trace_id), (2, trace_id)]  # the job's own code is in the trace

    (died,) = spans_named(exporter, "run doomed")
    assert died.context is not None and died.context.trace_id == trace_id
    assert died.attributes is not None and died.attributes["pulsarjobs.job.outcome"] == "dead"
    assert died.status.status_code == StatusCode.ERROR
    assert died.status.description == "ValueError: no such customer"
    assert letter.envelope is not None  # the dead letter keeps the trace context
    assert f"{trace_id:032x}" in letter.envelope.meta["traceparent"]


def test_without_the_extra_nothing_is_traced_and_no_meta_is_added(
    broker: BrokerUnderTest, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracing, "AVAILABLE", False)  # as when opentelemetry is not installed
    exporter.clear()
    ran_in.clear()
    app = traced_app(broker)
    assert not any(isinstance(hook, tracing.Tracing) for hook in app.hooks.stack)
    with trace.get_tracer("checkout").start_as_current_span("checkout"):
        app.enqueue(app.jobs["doomed"].call())
    with Inspector(app.settings) as inspector:
        with worker_in_thread(app, queues="traced"):
            wait_until(lambda: inspector.dead_count("traced") == 1, 60)
        (letter,) = inspector.dead_letters("traced")
    app.close()
    assert letter.envelope is not None and "traceparent" not in letter.envelope.meta
    assert [span.name for span in exporter.get_finished_spans()] == ["checkout"]
