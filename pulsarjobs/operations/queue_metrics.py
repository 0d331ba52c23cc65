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
from collections.abc import Callable, Iterable

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pulsarjobs.logs import error_text
from pulsarjobs.operations.inspector import Inspector, QueueStats

log = structlog.get_logger("pulsarjobs.queue_metrics")

# name, help, value of a queue's stats (None: not known, no sample)
GAUGES: tuple[tuple[str, str, Callable[[QueueStats], float | None]], ...] = (
    ("waiting", "Jobs due and not yet handed to a worker.", lambda q: q.waiting),
    ("scheduled", "Jobs due later: enqueued for later, or retries waiting.", lambda q: q.scheduled),
    ("in_flight", "Jobs handed to workers (running or prefetched), not yet acknowledged.",
     lambda q: q.in_flight),
    ("dead", "Dead letters not replayed or purged.", lambda q: q.dead),
    ("consumers", "Worker processes reading the queue.", lambda q: q.consumers),
    ("oldest_due_seconds", "How long the oldest due job has been due.",
     lambda q: q.oldest_seconds),
)  # fmt: skip


class QueueCollector(Collector):
    """Gauges `pulsarjobs_queue_<name>{queue}` for every queue, read when scraped."""

    def __init__(self, inspector: Inspector) -> None:
        self.inspector = inspector
        self.errors = 0  # scrapes that could not read every queue
        self._scraping = threading.Lock()  # one broker read at a time, however many scrapers

    def describe(self) -> Iterable[Metric]:
        """The metrics without values: registering asks this, not the broker."""
        return [*self._gauges(), self._errors()]

    def collect(self) -> Iterable[Metric]:
        with self._scraping:
            queues = self._read()
        gauges = self._gauges()
        for stats in queues:
            for gauge, (_, _, value_of) in zip(gauges, GAUGES, strict=True):
                value = value_of(stats)
                if value is not None:
                    gauge.add_metric([stats.queue], value)
        return [*gauges, self._errors()]

    def _read(self) -> list[QueueStats]:
        """Every queue the broker tells of; what it does not is logged and counted."""
        read: list[QueueStats] = []
        try:
            for name in self.inspector.queue_names():
                read.append(self.inspector.queue(name))
        except Exception as exc:
            self.errors += 1
            log.warning("cannot read the queues for metrics", error=error_text(exc))
        return read

    @staticmethod
    def _gauges() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(f"pulsarjobs_queue_{name}", text, labels=["queue"])
            for name, text, _ in GAUGES
        ]

    def _errors(self) -> CounterMetricFamily:
        return CounterMetricFamily(
            "pulsarjobs_queue_scrape_errors",
            "Scrapes that could not read every queue from the broker.",
            value=self.errors,
        )
