"""Prometheus metrics of workers: what they settled, how long runs took and jobs waited to
start, and what they hold now — served over HTTP at `--metrics-port` (docs/metrics.md).

Off unless asked for: a worker without `WorkerMetrics` pays one None check per job. On, a
settled run costs a dict lookup, a counter increment and a histogram observation; a started
job one histogram observation. The progress running jobs report (progress.py) is read at scrape
time, labelled by job id: at most one series per running job, gone once it ends.

Several processes (`--processes K`) have ONE endpoint, with prometheus-client's multiprocess
mode: the supervisor (`GroupMetrics`) makes a directory, names it in PROMETHEUS_MULTIPROC_DIR
before its children start, and serves the sum of what each child writes there. Gauges: one
process reads them at scrape time; a group's processes cannot be asked at scrape time, so each
copies its gauges into its files every second.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_wsgi_app,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.wire.type_metrics import RUN_BUCKETS, WAIT_BUCKETS  # the dashboard's too
from pulsarjobs.wire.verdicts import Outcome
from pulsarjobs.worker.health import (
    WEDGED_AFTER,
    GroupHealth,
    Health,
    Probes,
    report_path,
    serving,
)

if TYPE_CHECKING:
    from pulsarjobs.worker._worker_view import WorkerView

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own variable
GAUGE_COPY_INTERVAL_S = 1.0  # how stale a group's gauges may be
UNKNOWN_TYPE = "unknown"  # the type label of jobs the app does not declare: a bounded label set

Reading = tuple[Gauge, Callable[[], float]]  # a gauge and what reads its value off the worker


@dataclass(frozen=True)
class Families:
    jobs: Counter
    run: Histogram
    wait: Histogram
    running: Gauge
    prefetched: Gauge


@functools.cache
def families() -> Families:
    """The workers' metrics, made once per process on prometheus-client's default registry,
    where the app's own metrics are too: one endpoint serves both."""
    return Families(
        jobs=Counter(
            "pulsarjobs_jobs_processed",
            "Deliveries settled by the worker, by outcome (done, retry, dead, expired, early, "
            "deferred, snoozed, undecodable).",
            ["queue", "type", "outcome"],
        ),
        run=Histogram(
            "pulsarjobs_job_run_seconds",
            "How long runs took, failed ones included.",
            ["queue", "type"],
            buckets=RUN_BUCKETS,
        ),
        wait=Histogram(
            "pulsarjobs_job_wait_seconds",
            "From when a job was due (enqueued, or its run_at) to when it started.",
            ["queue"],
            buckets=WAIT_BUCKETS,
        ),
        running=Gauge(
            "pulsarjobs_worker_jobs_running",
            "Jobs running now.",
            multiprocess_mode="livesum",
        ),
        prefetched=Gauge(
            "pulsarjobs_worker_jobs_prefetched",
            "Jobs fetched from the broker and ready for a runner.",
            ["queue"],
            multiprocess_mode="livesum",
        ),
    )


class WorkerMetrics:
    """A worker's metrics. With a `port`, it serves them there; without, it is a process of a
    group whose supervisor serves them (see GroupMetrics)."""

    def __init__(self, port: int | None, wedged_after: float = WEDGED_AFTER) -> None:
        self.port = port
        self.wedged_after = wedged_after  # /livez fails once the event loop stood this long
        self.health: Health | None = None
        self.families = families()
        self._jobs: Mapping[str, object] = {}  # the app's declared jobs, by type
        self._settled: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._waits: dict[str, Histogram] = {}
        self._server: WSGIServer | None = None
        self._copier: threading.Thread | None = None
        self._stopping = threading.Event()
        self._progress: ProgressCollector | None = None

    def start(self, worker: WorkerView, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Serve (or copy, in a group) the worker's metrics; `loop`: the worker's event loop,
        whose ticks say it is live (health.py)."""
        self._jobs = worker.app.jobs
        gauges = self._gauges(worker)
        if self.port is None:
            if MULTIPROCESS_DIR not in os.environ:
                raise ConfigurationError(
                    f"worker metrics without a port are for a group's processes: "
                    f"{MULTIPROCESS_DIR} must name the directory their supervisor serves"
                )
            self._copier = threading.Thread(
                target=self._copy_gauges, args=(gauges,), name="pulsarjobs-metrics", daemon=True
            )
            self._copier.start()
            report = report_path(Path(os.environ[MULTIPROCESS_DIR]), os.getpid())
            self.health = Health(worker, self.wedged_after, report)  # the supervisor answers
            if loop is not None:
                self.health.start(loop)
            return
        for gauge, read in gauges:
            gauge.set_function(read)  # read at scrape time
        self._progress = ProgressCollector(worker)
        REGISTRY.register(self._progress)
        self.health = Health(worker, self.wedged_after)
        if loop is not None:
            self.health.start(loop)
        self._server = serve(self.port, REGISTRY, self.health)

    def stop(self) -> None:
        self._stopping.set()
        if self.health is not None:
            self.health.stop()
        if self._copier is not None:
            self._copier.join()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._progress is not None:
            REGISTRY.unregister(self._progress)

    # -- the per-job path --------------------------------------------------------------------

    def started(self, envelope: Envelope) -> None:
        """A job starts to run: how long it waited since it was due."""
        due = envelope.created_at
        if envelope.run_at is not None and envelope.run_at > due:
            due = envelope.run_at
        wait = self._waits.get(envelope.queue)
        if wait is None:
            wait = self._waits[envelope.queue] = self.families.wait.labels(envelope.queue)
        wait.observe(max(0.0, time.time() - due.timestamp()))

    def settled(self, queue: str, outcome: Outcome) -> None:
        """A delivery was settled: counted by outcome, its run timed if it ran."""
        key = (queue, outcome.envelope.type, outcome.kind)
        children = self._settled.get(key)
        if children is None:
            children = self._children(*key)
        children[0].inc()
        if outcome.duration is not None:
            children[1].observe(outcome.duration)

    def _children(self, queue: str, job_type: str, kind: str) -> tuple[Counter, Histogram]:
        """The labelled metrics of a key seen the first time. Only declared job types get a
        label of their own, so a producer of bad messages cannot grow the label set."""
        declared = job_type in self._jobs
        label = job_type if declared or not job_type else UNKNOWN_TYPE
        children = (
            self.families.jobs.labels(queue, label, kind),
            self.families.run.labels(queue, label),
        )
        if declared:
            self._settled[queue, job_type, kind] = children
        return children

    # -- gauges ------------------------------------------------------------------------------

    def _gauges(self, worker: WorkerView) -> Sequence[Reading]:
        """Each gauge with the function that reads it off the worker."""
        prefetched = self.families.prefetched
        return [(self.families.running, lambda: worker.busy)] + [
            (prefetched.labels(queue), functools.partial(worker.prefetched, queue))
            for queue in worker.plan.names
        ]

    def _copy_gauges(self, gauges: Sequence[Reading]) -> None:
        while True:
            stopping = self._stopping.wait(GAUGE_COPY_INTERVAL_S)
            for gauge, read in gauges:
                gauge.set(0 if stopping else read())
            if stopping:
                return


class ProgressCollector(Collector):
    """The progress each running job last reported, read off the worker at scrape time. Only
    a worker serving its own metrics: a group's processes cannot be asked at scrape time."""

    def __init__(self, worker: WorkerView) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        labels = ["queue", "type", "job_id"]
        done = GaugeMetricFamily(
            "pulsarjobs_job_progress_done",
            "How far a running job got, as it last said.",
            labels=labels,
        )
        total = GaugeMetricFamily(
            "pulsarjobs_job_progress_total",
            "The total a running job last said it goes to.",
            labels=labels,
        )
        for job in self.worker.running_jobs:
            if job.progress is not None:
                values = [job.queue, job.type, job.job_id]
                done.add_metric(values, job.progress.done)
                if job.progress.total is not None:
                    total.add_metric(values, job.progress.total)
        yield done
        yield total


class GroupMetrics:
    """The one endpoint of a group of worker processes, served by their supervisor."""

    def __init__(self, port: int, wedged_after: float = WEDGED_AFTER) -> None:
        self.port = port
        self.wedged_after = wedged_after
        self.directory = ""
        self.health: GroupHealth | None = None  # its processes' health, for the probes
        self._server: WSGIServer | None = None

    def start(self) -> None:
        """Call before the children start: they find the directory in their environment."""
        self.directory = tempfile.mkdtemp(prefix="pulsarjobs-metrics-")
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]
        self.health = GroupHealth(Path(self.directory), self.wedged_after)
        try:
            self._server = serve(self.port, registry, self.health)
        except ConfigurationError:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        os.environ[MULTIPROCESS_DIR] = self.directory

    def process_died(self, pid: int) -> None:
        """Its gauges go; its counters stay in the sums, as a host's totals should."""
        multiprocess.mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]
        report_path(Path(self.directory), pid).unlink(missing_ok=True)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        os.environ.pop(MULTIPROCESS_DIR, None)
        shutil.rmtree(self.directory, ignore_errors=True)


def serve(port: int, registry: CollectorRegistry, probes: Probes) -> WSGIServer:
    """Metrics over HTTP on every interface, from a thread of their own, with the probes
    /livez and /readyz (health.py)."""
    app = serving(probes, make_wsgi_app(registry))
    try:
        server = make_server("", port, app, ThreadingWSGIServer, handler_class=_Quiet)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on port {port}: {exc.strerror or exc}; "
            "choose another with --metrics-port"
        ) from None
    threading.Thread(
        target=server.serve_forever, name="pulsarjobs-metrics-http", daemon=True
    ).start()
    return server


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes are not logged."""
