"""Which middleware hooks a run calls: those that listen, as they say now."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pulsarjobs import App, Envelope, Middleware, current_job, tracing
from pulsarjobs.clock import utc_now
from pulsarjobs.middleware import Hooks, listening_changed
from pulsarjobs.settings import Settings
from pulsarjobs.testing import TestRunner
from pulsarjobs.worker._running import CurrentRuns
from pulsarjobs.worker.execution import JobExecutor
from pulsarjobs.worker.judge import Judge


class Switchable(Middleware):
    """Records each run hook it was called for, while it listens."""

    def __init__(self, on: bool) -> None:
        self.on = on
        self.calls: list[str] = []

    def listens(self, hook: str) -> bool:
        return self.on

    @contextlib.contextmanager
    def around_process(self, envelope: Envelope) -> Iterator[None]:
        self.calls.append("around")
        yield

    def before_process(self, envelope: Envelope) -> None:
        self.calls.append("before")

    def after_process(self, envelope: Envelope, duration: float) -> None:
        self.calls.append("after")


def app_with(middleware: Middleware) -> App:
    app = App(Settings(), middleware=[middleware])

    @app.job
    def sync_job() -> str:
        return "sync"

    @app.job
    async def async_job() -> str:
        return "async"

    return app


@pytest.mark.parametrize("job", ["sync_job", "async_job"])
@pytest.mark.parametrize("first", [False, True])
def test_a_middleware_is_called_for_the_runs_while_it_listens(job: str, first: bool) -> None:
    switchable = Switchable(on=first)
    app = app_with(switchable)
    with TestRunner(app) as runner:
        app.jobs[job].enqueue()
        runner.run_all()
        switchable.on = not first
        listening_changed()
        app.jobs[job].enqueue()
        runner.run_all()
        assert [outcome.value for outcome in runner.outcomes] == [job[:-4]] * 2
    assert switchable.calls == ["around", "before", "after"]


def test_with_no_middleware_listening_a_run_is_the_job_alone_in_its_own_context() -> None:
    app = App(Settings())
    app.hooks = Hooks()
    assert app.hooks.runs_bare

    @app.job
    def sync_job() -> str:
        return f"sync {current_job().id}"

    @app.job
    async def async_job() -> str:
        return f"async {current_job().id}"

    with ThreadPoolExecutor(1) as threads:
        current = CurrentRuns()
        judge = Judge(app, "worker", utc_now, current)
        executor = JobExecutor(app, judge, current, threads)
        sync_envelope = Envelope(id="s1", type="sync_job", queue="default")
        async_envelope = Envelope(id="a1", type="async_job", queue="default")
        sync_work = judge.before(sync_envelope)
        assert isinstance(sync_work, functools.partial)
        assert executor.run_here(sync_work, sync_envelope).value == "sync s1"
        async_run = executor.run(judge.before(async_envelope), async_envelope, None)  # type: ignore[arg-type]
        assert asyncio.run(async_run).value == "async a1"
        pooled = executor.run(judge.before(sync_envelope), sync_envelope, None)  # type: ignore[arg-type]
        assert asyncio.run(pooled).value == "sync s1"  # on the pool
    assert current.now == {}


def test_runs_are_traced_once_an_enqueue_finds_a_tracer_provider_set_after_the_app_was_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider_is_set = False
    monkeypatch.setattr(tracing, "provider_set", lambda: provider_is_set)
    spans = InMemorySpanExporter()
    provider = TracerProvider()  # this test's own: a process sets its global one only once
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = App(Settings())
    [tracer] = [hook for hook in app.hooks.stack if isinstance(hook, tracing.Tracing)]
    tracer.tracer = provider.get_tracer("pulsarjobs")

    @app.job
    def traced(n: int) -> None: ...

    with TestRunner(app) as runner:
        traced.enqueue(1)
        runner.run_all()
        assert [span.name for span in spans.get_finished_spans()] == []
        provider_is_set = True
        traced.enqueue(2)
        runner.run_all()
    assert [span.name for span in spans.get_finished_spans()] == ["enqueue traced", "run traced"]
