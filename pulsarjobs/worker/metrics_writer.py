"""Publishes a worker's counts by job type (type_metrics.py) to the metrics topic, with its
queues' sizes, for the dashboard's Metrics page.

Started and stopped with the worker's presence (_presence.py), it takes what was counted every
`metrics_interval` seconds (aligned to the clock: at each minute's turn by default), adds its
queues' sizes, publishes that as one message, and starts again from zero; stopping, it reports
once more. A report the broker refuses is logged and dropped: metrics never hold a job up.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

import structlog

from pulsarjobs.errors import NotFound, PulsarJobsError
from pulsarjobs.logs import error_text
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.keeping import keep_for
from pulsarjobs.transport.topic_stats import subscription_of
from pulsarjobs.transport.topics import metrics_topic, topics_for
from pulsarjobs.wire.type_metrics import QueueSize, Report
from pulsarjobs.worker.type_metrics import TypeCounts

if TYPE_CHECKING:
    from pulsarjobs.worker._worker_view import WorkerView

log = structlog.get_logger("pulsarjobs.metrics_writer")

KEPT_MINUTES = 15 * 24 * 60  # the 7-day view and the 7 days before it (its trend), a day more
SEND_TIMEOUT_S = 10.0


class MetricsWriter:
    """Publishes a worker's counts (`TypeCounts`) and its queues' sizes, from a thread."""

    def __init__(self, worker: WorkerView, counts: TypeCounts) -> None:
        self.worker = worker
        self.counts = counts
        self.settings = worker.settings  # the group it serves
        self.interval = self.settings.metrics_interval
        self.topic = metrics_topic(self.settings)
        self._since = time.time()
        self._stopping = threading.Event()
        self._admin: Admin | None = None
        self._sizes_failed = False
        self._thread = threading.Thread(target=self._run, name="pulsarjobs-type-metrics",
                                        daemon=True)  # fmt: skip

    @classmethod
    def start(cls, worker: WorkerView) -> MetricsWriter | None:
        """None when metrics are off (metrics_interval 0). Call from a thread that may block."""
        if not worker.settings.metrics_interval:
            return None
        writer = cls(worker, worker.stats.per_type)
        try:
            worker.app.connection.producer(writer.topic)  # the topic exists: set its retention
            keep_for(writer.settings, writer.topic, KEPT_MINUTES)
        except PulsarJobsError as exc:
            log.warning("metrics by type are not published", error=error_text(exc))
            return None
        writer._thread.start()
        return writer

    def stop(self) -> None:
        """Publish what was counted since the last report, and end. Call from a thread that may
        block."""
        self._stopping.set()
        self._thread.join(SEND_TIMEOUT_S + 5)

    def _run(self) -> None:
        try:
            while not self._stopping.wait(self.interval - time.time() % self.interval):
                self.report()
            self.report()
        finally:
            if self._admin is not None:
                self._admin.close()

    def report(self) -> None:
        """One report: stamped with the minute the middle of its period falls in (a period
        that starts at a minute's turn is that minute's)."""
        now = time.time()
        minute = int((self._since + now) / 2 // 60)
        self._since = now
        report = Report(self.worker.name, minute, tuple(self.counts.taken()), self.queue_sizes())
        try:
            stored = self.worker.app.connection.publish(self.topic, report.encode())
            stored.result(SEND_TIMEOUT_S)
        except Exception as exc:
            log.warning("a metrics report was not stored", error=error_text(exc))

    def queue_sizes(self) -> tuple[QueueSize, ...]:
        """Its queues' stored, unacknowledged jobs, and the oldest one's age, as the broker's
        stats say (one admin call a topic); every worker serving a queue writes it, and the
        reader keeps the latest of each minute. Best effort: none when the admin API fails."""
        try:
            if self._admin is None:
                self._admin = Admin.of(self.settings, timeout=5.0)
            return tuple(self._queue_size(self._admin, queue) for queue in self.worker.plan.names)
        except PulsarJobsError as exc:
            if not self._sizes_failed:  # once: a role without admin rights fails each minute
                log.warning("queue sizes not read for the metrics", error=error_text(exc))
            self._sizes_failed = True
            return ()

    def _queue_size(self, admin: Admin, queue: str) -> QueueSize:
        topics = topics_for(self.settings, queue)
        size, earliest = 0, 0
        for topic in (topics.jobs, topics.retry, topics.ordered):
            with contextlib.suppress(NotFound):  # a topic not made yet holds nothing
                stats = admin.summed_stats(topic, earliest=True)
                mine = subscription_of(stats, self.settings.subscription)
                size += int(mine.get("msgBacklog", 0))
                published = int(mine.get("earliestMsgPublishTimeInBacklog", 0) or 0)
                if published > 0 and (earliest == 0 or published < earliest):
                    earliest = published
        oldest = max(0.0, time.time() - earliest / 1000) if earliest and size else None
        return QueueSize(queue, size, oldest)
