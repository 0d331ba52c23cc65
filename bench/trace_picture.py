"""Draws docs/images/trace.png: one job's trace through a real broker — the request that
enqueued it, the enqueue, a run that failed, the retry that succeeded, and the spans the job made.

    python -m bench.trace_picture [--out docs/images/trace.png]

Uses the broker of the PULSARJOBS_* settings (service and admin URL), in a namespace of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
import uuid

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from pulsarjobs import App, RetryPolicy, Settings, Worker, current_job
from pulsarjobs.transport.admin import Admin


def record_trace() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("shop")
    settings = Settings.from_env(namespace=f"trace-picture-{uuid.uuid4().hex[:8]}")
    with Admin.of(settings) as admin:
        admin.ensure_namespace(settings.full_namespace)
    app = App(settings)

    @app.job(retry=RetryPolicy(max_attempts=3, initial_delay=0.5, jitter=0.0))
    def send_receipt(order: int) -> None:
        with tracer.start_as_current_span("render receipt"):
            time.sleep(0.03)
        with tracer.start_as_current_span("smtp send", kind=SpanKind.CLIENT):
            time.sleep(0.05)
            if current_job().attempt == 1:
                raise ConnectionError("smtp.example.com did not answer")

    with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER):
        time.sleep(0.02)
        send_receipt.enqueue(42)
        time.sleep(0.01)
    worker = Worker(app, "default")
    thread = threading.Thread(target=lambda: asyncio.run(worker.run_async()), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while sum(s.name == "run send_receipt" for s in exporter.get_finished_spans()) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the job did not run twice within 60 s")
            time.sleep(0.1)
    finally:
        worker.stop()
        thread.join(60)
        app.close()
    return list(exporter.get_finished_spans())


def draw(spans: list[ReadableSpan], path: str) -> None:
    by_id = {span.context.span_id: span for span in spans if span.context is not None}

    def depth(span: ReadableSpan) -> int:
        parent = span.parent.span_id if span.parent is not None else None
        return 0 if parent not in by_id else 1 + depth(by_id[parent])

    ordered = sorted(spans, key=lambda span: span.start_time or 0)
    t0 = min(span.start_time or 0 for span in spans)
    figure, axes = plt.subplots(figsize=(10, 0.45 * len(ordered) + 1))
    for row, span in enumerate(ordered):
        start = ((span.start_time or 0) - t0) / 1e9
        length = max(((span.end_time or 0) - (span.start_time or 0)) / 1e9, 0.004)
        failed = span.status.status_code == StatusCode.ERROR
        axes.barh(row, length, left=start, color="#d9534f" if failed else "#4a7fb5")
        attributes = span.attributes or {}
        detail = ""
        if "pulsarjobs.job.outcome" in attributes:
            detail = (
                f"  attempt {attributes['pulsarjobs.job.attempt']}, "
                f"{attributes['pulsarjobs.job.outcome']}"
            )
        label = f"{'   ' * depth(span)}{span.name}  [{span.kind.name}]{detail}"
        axes.text(start + length + 0.01, row, label, va="center", fontsize=9)
    axes.set_yticks([])
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the request began (one trace: the same trace id on every bar)")
    axes.set_xlim(0, max(((span.end_time or 0) - t0) / 1e9 for span in spans) * 1.6)
    axes.set_title("A job enqueued by a request, failed once, retried: one trace")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/images/trace.png")
    draw(record_trace(), parser.parse_args().out)


if __name__ == "__main__":
    main()
