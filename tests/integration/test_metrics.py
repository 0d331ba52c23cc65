"""Prometheus metrics as a user scrapes them: a real worker's endpoint, and queue gauges read
from the real broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pulsarjobs import Inspector, QueueCollector, WorkerMetrics
from pulsarjobs.app import App
from tests.integration.helpers import (
    settings_env,
    start_worker_process,
    started,
    wait_until,
    worker_in_thread,
)

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]  # by name, then by labels


def parse(text: str) -> Samples:
    samples: Samples = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def scrape(port: int) -> Samples:
    """The worker's metrics; none while its endpoint is not up yet."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    except httpx.TransportError:
        return defaultdict(dict)
    response.raise_for_status()
    return parse(response.text)


def by(samples: Samples, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """The samples of a metric, keyed by the values of the given labels."""
    return {
        tuple(dict(key)[label] for label in labels): value for key, value in samples[name].items()
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0, log.read_text()[-3000:]


# What the jobs enqueued by `enqueue_outcomes` settle as, by (outcome, type).
SETTLED = {
    ("done", "greet"): 20,
    ("retry", "fails_twice"): 2,
    ("done", "fails_twice"): 1,
    ("retry", "always_fails"): 2,
    ("dead", "always_fails"): 1,
}
RUNS = {"greet": 20, "fails_twice": 3, "always_fails": 3}


def enqueue_outcomes(app: App) -> None:
    """Jobs that succeed, fail twice then succeed, and always fail (3 attempts)."""
    for n in range(20):
        app.jobs["greet"].enqueue(f"n{n}")
    app.jobs["fails_twice"].enqueue()
    app.jobs["always_fails"].enqueue("always")


def settled(samples: Samples) -> dict[tuple[str, ...], float]:
    """The counts by (outcome, type); `early` deliveries (put back unrun) may come or not."""
    counts = by(samples, "pulsarjobs_jobs_processed_total", "outcome", "type")
    return {key: value for key, value in counts.items() if key[0] != "early"}


def assert_counted_and_timed(samples: Samples) -> None:
    assert settled(samples) == SETTLED
    assert set(by(samples, "pulsarjobs_jobs_processed_total", "queue")) == {("default",)}
    runs = by(samples, "pulsarjobs_job_run_seconds_count", "type")
    assert runs == {(job_type,): count for job_type, count in RUNS.items()}
    waits = by(samples, "pulsarjobs_job_wait_seconds_count", "queue")
    assert waits == {("default",): sum(RUNS.values())}  # every run waited, once


def running(samples: Samples) -> float:
    return by(samples, "pulsarjobs_worker_jobs_running").get((), -1)


def prefetched(samples: Samples) -> float:
    return by(samples, "pulsarjobs_worker_jobs_prefetched", "queue").get(("default",), -1)


def test_a_worker_process_serves_counts_times_and_what_it_holds(app: App, tmp_path: Path) -> None:
    record, log, port = tmp_path / "record.jsonl", tmp_path / "worker.log", free_port()
    env = settings_env(app.settings, record)
    enqueue_outcomes(app)
    worker = start_worker_process(
        env, log, "--metrics-port", str(port), "--concurrency", "1", "--prefetch", "4"
    )
    try:
        wait_until(lambda: settled(scrape(port)) == SETTLED, 120, interval=0.5)
        assert_counted_and_timed(scrape(port))
        for _ in range(3):  # one runs; with a concurrency of 1, the others wait in the feed
            app.jobs["hold"].enqueue(1.5)
        wait_until(lambda: running(s := scrape(port)) == 1 and prefetched(s) >= 1, 60, 0.05)
        wait_until(lambda: len(started(record, "hold")) == 3, 60)
        wait_until(lambda: running(s := scrape(port)) == 0 and prefetched(s) == 0, 60)
    finally:
        stop(worker, log)


def test_processes_of_a_group_add_up_on_one_endpoint(app: App, tmp_path: Path) -> None:
    record, log, port = tmp_path / "record.jsonl", tmp_path / "workers.log", free_port()
    env = settings_env(app.settings, record)
    enqueue_outcomes(app)
    slow = 200
    app.enqueue_many([app.jobs["slow"].call(n) for n in range(slow)])
    workers = start_worker_process(
        env, log, "--metrics-port", str(port), "--processes", "2", "--concurrency", "2"
    )
    expected = {**SETTLED, ("done", "slow"): slow}
    try:
        wait_until(lambda: settled(scrape(port)) == expected, 180, interval=0.5)
        samples = scrape(port)
        assert len({run["pid"] for run in started(record, "slow")}) == 2  # both took part
        runs = by(samples, "pulsarjobs_job_run_seconds_count", "type")
        assert runs == {(t,): n for t, n in {**RUNS, "slow": slow}.items()}
        waits = by(samples, "pulsarjobs_job_wait_seconds_count", "queue")
        assert waits == {("default",): sum(RUNS.values()) + slow}
        app.jobs["hold"].enqueue(3.0)
        wait_until(lambda: running(scrape(port)) == 1, 60, 0.2)  # copied every second
        wait_until(lambda: running(s := scrape(port)) == 0 and prefetched(s) == 0, 60)
    finally:
        stop(workers, log)


def listening_inodes() -> set[str]:
    """The inodes of the TCP sockets this process listens on."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    listening.add(fields[9])
    own = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            own.add(target.removeprefix("socket:[").removesuffix("]"))
    return listening & own


def test_without_metrics_a_worker_opens_no_port_and_with_them_it_serves(app: App) -> None:
    before = listening_inodes()
    with worker_in_thread(app) as worker:
        assert worker.ready.wait(60)
        assert listening_inodes() == before
    port = free_port()
    with worker_in_thread(app, metrics=WorkerMetrics(port=port)) as worker:
        assert worker.ready.wait(60)
        assert listening_inodes() != before
        assert "pulsarjobs_worker_jobs_running" in scrape(port)
    assert listening_inodes() == before  # closed on stop


def test_queue_collector_reports_what_the_inspector_sees(app: App) -> None:
    for n in range(2):
        app.jobs["breaks"].enqueue(n, "value")  # one attempt: dead at once
    with Inspector(app.settings) as inspector:
        with worker_in_thread(app):
            wait_until(lambda: inspector.dead_count("default") == 2, 60)
        for n in range(5):
            app.jobs["greet"].enqueue(f"n{n}")
        for n in range(3):
            app.enqueue(app.jobs["greet"].call(f"later {n}"), in_=timedelta(hours=1))
        app.jobs["critical_job"].enqueue(1)
        registry = CollectorRegistry()
        collector = QueueCollector(inspector)
        registry.register(collector)
        samples = parse(generate_latest(registry).decode())
        queues = {stats.queue: stats for stats in inspector.queues()}
    assert {q.queue: (q.waiting, q.scheduled, q.dead) for q in queues.values()} == {
        "default": (5, 3, 2),
        "critical": (1, 0, 0),
    }
    for field in ("waiting", "scheduled", "in_flight", "dead", "consumers"):
        reported = by(samples, f"pulsarjobs_queue_{field}", "queue")
        assert reported == {(name,): getattr(q, field) for name, q in queues.items()}, field
    assert by(samples, "pulsarjobs_queue_scrape_errors_total") == {(): 0}
    assert collector.errors == 0
