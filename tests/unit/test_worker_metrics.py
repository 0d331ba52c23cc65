"""What a worker's metrics count per settled delivery, read back from the registry it serves."""

from __future__ import annotations

import socket

from prometheus_client import REGISTRY

from pulsarjobs import App, Envelope, Outcome, Settings, Worker, WorkerMetrics
from pulsarjobs.wire.verdicts import Verdict

QUEUE = "unit_metrics"  # the registry is the process's: a queue no other test uses


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def count(job_type: str, outcome: str) -> float | None:
    labels = {"queue": QUEUE, "type": job_type, "outcome": outcome}
    return REGISTRY.get_sample_value("pulsarjobs_jobs_processed_total", labels)


def runs(job_type: str) -> float | None:
    labels = {"queue": QUEUE, "type": job_type}
    return REGISTRY.get_sample_value("pulsarjobs_job_run_seconds_count", labels)


def test_outcomes_are_counted_by_kind_runs_timed_and_undeclared_types_bounded() -> None:
    app = App(Settings())

    @app.job
    def noop() -> None: ...

    metrics = WorkerMetrics(port=free_port())
    metrics.start(Worker(app, QUEUE, metrics=metrics))
    try:
        job = Envelope(id="1", type="noop", queue=QUEUE)
        metrics.settled(QUEUE, Outcome(Verdict.DONE, job, duration=0.01))
        metrics.settled(QUEUE, Outcome(Verdict.RETRY, job, duration=0.02))
        metrics.settled(QUEUE, Outcome(Verdict.EXPIRED, job))  # did not run: not timed
        metrics.settled(QUEUE, Outcome(Verdict.CANCELLED, job))
        for n in range(3):
            stranger = Envelope(id=f"s{n}", type=f"no_such_job_{n}", queue=QUEUE)
            metrics.settled(QUEUE, Outcome(Verdict.DEAD, stranger))
    finally:
        metrics.stop()
    assert [count("noop", kind) for kind in ("done", "retry", "expired", "cancelled")] == [1] * 4
    assert runs("noop") == 2
    assert count("unknown", "dead") == 3
    assert count("no_such_job_0", "dead") is None
