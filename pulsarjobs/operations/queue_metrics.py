"""Queue metrics read from the broker at scrape time, for a Prometheus endpoint such as the
dashboard's `/metrics` (worker metrics are in metrics.py).

    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from pulsarjobs import Inspector, QueueCollector, Settings

    registry = CollectorRegistry()
    registry.register(QueueCollector(Inspector(Settings.from_env())))
    body = generate_latest(registry)  # the response, with Content-Type CONTENT_TYPE_LATEST

Each scrape asks the broker what `pulsarjobs queues` shows. A broker that does not answer does
not fail the scrape: the queues it could read are reported, and the scrape error counted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pulsarjobs.logs import error_text
from pulsarjobs.operations.inspector import Inspector, QueueStats
from pulsarjobs.operations.ready_work import ReadyQueue, ReadyWork, with_exact_counts

log = structlog.get_logger("pulsarjobs.queue_metrics")
Stats = TypeVar("Stats", QueueStats, ReadyQueue)

# name, help, value of a queue's stats (None: not known, no sample)
GAUGES: tuple[tuple[str, str, Callable[[QueueStats], float | None]], ...] = (
    ("waiting", "Jobs due and not yet handed to a worker.", lambda q: q.waiting),
    ("scheduled", "Jobs due later: enqueued for later (where retrying is served, retries are "
     "counted there instead).", lambda q: q.scheduled),
    ("in_flight", "Jobs handed to workers (running or prefetched), not yet acknowledged.",
     lambda q: q.in_flight),
    ("dead", "Dead letters not replayed or purged.", lambda q: q.dead),
    ("consumers", "Worker processes reading the queue.", lambda q: q.consumers),
    ("oldest_due_seconds", "How long the oldest due job has been due.",
     lambda q: q.oldest_seconds),
)  # fmt: skip
READY_GAUGES: tuple[tuple[str, str, Callable[[ReadyQueue], float | None]], ...] = (
    ("ready", "Jobs due now and not yet handed to a worker, counted exactly (ready_work.py).",
     lambda q: q.ready),
    ("oldest_ready_seconds", "How long the oldest due job not yet acknowledged has been due.",
     lambda q: q.oldest_ready_seconds),
    ("retrying", "Jobs due later on the retry topic: retries waiting out their backoff.",
     lambda q: q.retrying),
    ("cancelled", "Cancelled jobs held until they come due, when a worker drops them.",
     lambda q: q.cancelled),
)  # fmt: skip


class QueueCollector(Collector):
    """Gauges `pulsarjobs_queue_<name>{queue}` for every queue, read when scraped; with
    `ready_work`, exact counts (waiting and scheduled made exact, and ready, retrying,
    cancelled)."""

    def __init__(self, inspector: Inspector, ready_work: ReadyWork | None = None) -> None:
        self.inspector = inspector
        self.ready_work = ready_work
        self.errors = 0  # scrapes that could not read every queue
        self._scraping = threading.Lock()  # one broker read at a time, however many scrapers

    def describe(self) -> Iterable[Metric]:
        """The metrics without values: registering asks this, not the broker."""
        return [*self._gauges(GAUGES), *self._gauges(self._ready_specs()), self._errors()]

    def collect(self) -> Iterable[Metric]:
        with self._scraping:
            queues, ready = self._read()
        return [*_filled(GAUGES, queues), *_filled(self._ready_specs(), ready), self._errors()]

    def _ready_specs(self) -> tuple[tuple[str, str, Callable[[ReadyQueue], float | None]], ...]:
        return READY_GAUGES if self.ready_work is not None else ()

    def _read(self) -> tuple[list[QueueStats], list[ReadyQueue]]:
        """Every queue the broker tells of; what it does not is logged and counted."""
        read: list[QueueStats] = []
        ready: list[ReadyQueue] = []
        try:
            names = self.inspector.queue_names()
            for name in names:
                read.append(self.inspector.queue(name))
            if self.ready_work is not None:
                ready = self.ready_work.queues(names)
                read = list(map(with_exact_counts, read, ready))
        except Exception as exc:
            self.errors += 1
            log.warning("cannot read the queues for metrics", error=error_text(exc))
        return read, ready

    @staticmethod
    def _gauges(specs: Sequence[tuple[str, str, object]]) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(f"pulsarjobs_queue_{name}", text, labels=["queue"])
            for name, text, _ in specs
        ]

    def _errors(self) -> CounterMetricFamily:
        return CounterMetricFamily(
            "pulsarjobs_queue_scrape_errors",
            "Scrapes that could not read every queue from the broker.",
            value=self.errors,
        )


def _filled(
    specs: Sequence[tuple[str, str, Callable[[Stats], float | None]]], found: list[Stats]
) -> list[GaugeMetricFamily]:
    """The gauges of `specs`, with a sample per queue of `found` that has a value."""
    gauges = QueueCollector._gauges(specs)
    for stats in found:
        for gauge, (_, _, value_of) in zip(gauges, specs, strict=True):
            if (value := value_of(stats)) is not None:
                gauge.add_metric([stats.queue], value)
    return gauges
