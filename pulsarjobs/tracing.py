"""OpenTelemetry traces of jobs, when the `otel` extra is installed (`pulsarjobs[otel]`).

Enqueueing a job makes a PRODUCER span `enqueue <type>` and puts its W3C trace context
(`traceparent`, `tracestate`, through the global propagator) into the envelope's `meta`. A worker
runs each job in a CONSUMER span `run <type>` whose parent is that context, so the run joins the
trace of the code that enqueued it, and what the job traces itself nests inside the run. A retry
or a dead letter is a copy of the envelope, meta included: every attempt — and a replay of a dead
letter — is another child of the same producer span, in the same trace, with its attempt number
and the error it retries.

This is the one module that imports OpenTelemetry. Without the extra, App adds no middleware and
a job pays nothing. With it but no tracer provider set, the API records nothing, so neither do the
hooks: the middleware does not listen to runs, and a run pays nothing either. Whether a provider
is set is asked at each enqueue and when a worker starts, not per run (asking the API reads the
environment).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager as ContextManager

from pulsarjobs.middleware import Middleware, listening_changed
from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.wire.verdicts import Verdict

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import ProxyTracerProvider, Span, SpanKind, Status, StatusCode
except ImportError:  # the extra is not installed: no tracing at all
    AVAILABLE = False
else:
    AVAILABLE = True

_NOTHING_AROUND = contextlib.nullcontext()
# Attribute names: OpenTelemetry's messaging conventions where one fits, ours for the rest.
QUEUE = "messaging.destination.name"
OPERATION = "messaging.operation.type"
JOB_ID = "pulsarjobs.job.id"
JOB_TYPE = "pulsarjobs.job.type"
ATTEMPT = "pulsarjobs.job.attempt"
OUTCOME = "pulsarjobs.job.outcome"  # done, retry, dead, or interrupted (see `_run`)
PREVIOUS_ERROR = "pulsarjobs.job.previous_error"  # what the attempt before this one died of


def middleware() -> list[Middleware]:
    """What App adds to its hooks: the tracing middleware with the extra, nothing without."""
    return [Tracing()] if AVAILABLE else []


def provider_set() -> bool:
    """Whether a tracer provider was set: the API alone records nothing."""
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


class Tracing(Middleware):
    def __init__(self) -> None:
        self.tracer = trace.get_tracer("pulsarjobs")
        # Apps often set their provider after they made their App: looked at again below.
        self.recording = provider_set()

    def listens(self, hook: str) -> bool:
        return hook != "around_process" or self.recording

    def on_worker_start(self, worker: object) -> None:
        self._look_at_provider()

    def before_enqueue(self, envelope: Envelope) -> Envelope:
        self._look_at_provider()
        if not self.recording:
            return envelope
        carrier = dict(envelope.meta)
        with self.tracer.start_as_current_span(
            f"enqueue {envelope.type}",
            kind=SpanKind.PRODUCER,
            attributes={**job_attributes(envelope), OPERATION: "send"},
        ):
            propagate.inject(carrier)
        return envelope.replace(meta=carrier)

    def _look_at_provider(self) -> None:
        recording = provider_set()
        if recording != self.recording:
            self.recording = recording
            listening_changed()  # runs are traced from now on, or no longer

    def around_process(self, envelope: Envelope) -> ContextManager[None]:
        return self._run(envelope) if self.recording else _NOTHING_AROUND

    @contextlib.contextmanager
    def _run(self, envelope: Envelope) -> Iterator[None]:
        """The run's span. A failure is a retry or the end (dead), as the job's retry policy
        decides; an interruption (an async job's timeout or cancel, the worker's shutdown)
        leaves the verdict to the worker, whose next attempt, if any, has a span of its own."""
        attributes = {**job_attributes(envelope), OPERATION: "process"}
        if envelope.last_error is not None:
            attributes[PREVIOUS_ERROR] = envelope.last_error.summary
        with self.tracer.start_as_current_span(
            f"run {envelope.type}",
            context=propagate.extract(envelope.meta),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except Exception as exc:
                exhausted = envelope.retry.exhausted(envelope.attempt)
                failed(span, exc, str(Verdict.DEAD if exhausted else Verdict.RETRY))
                raise
            except BaseException as exc:
                failed(span, exc, "interrupted")
                raise
            span.set_attribute(OUTCOME, str(Verdict.DONE))


def job_attributes(envelope: Envelope) -> dict[str, str | int]:
    return {
        JOB_ID: envelope.id,
        JOB_TYPE: envelope.type,
        QUEUE: envelope.queue,
        ATTEMPT: envelope.attempt,
        "messaging.system": "pulsar",
    }


def failed(span: Span, exc: BaseException, outcome: str) -> None:
    span.set_attribute(OUTCOME, outcome)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
