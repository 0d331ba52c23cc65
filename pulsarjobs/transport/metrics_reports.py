"""Reports to the metrics topic for the dashboard's Metrics page (wire/type_metrics.py): a
worker's counts by job type (worker/type_metrics.py) and the sizes of its queues; or, from the
leading scheduler, the sizes of the app's queues alone — so that they are written while no
worker runs, when a growing backlog matters most.

Started and stopped with a worker's presence (_presence.py) or a scheduler's leadership, it
takes what was counted every `metrics_interval` seconds (aligned to the clock: at each minute's
turn by default), adds the queues' sizes, publishes that as one message, and starts again from
zero; stopping, it reports once more. A report the broker refuses is logged and dropped:
metrics never hold a job up.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence

import structlog

from pulsarjobs.errors import NotFound, PulsarJobsError
from pulsarjobs.logs import error_text
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.keeping import keep_for
from pulsarjobs.transport.topic_stats import subscription_of
from pulsarjobs.transport.topics import metrics_topic, topics_for
from pulsarjobs.wire.type_metrics import QueueSize, Report, Row

log = structlog.get_logger("pulsarjobs.metrics_reports")

KEPT_MINUTES = 15 * 24 * 60  # the 7-day view and the 7 days before it (its trend), a day more
SEND_TIMEOUT_S = 10.0


class MetricsWriter:
    """Publishes what `taken` gives (the rows counted since it was last asked) and the sizes
    of `queues`, as `name`, from a thread."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        connection: Connection,
        queues: Sequence[str],
        taken: Callable[[], Sequence[Row]],
    ) -> None:
        self.name = name
        self.settings = settings  # those of the group it serves, for a worker
        self.connection = connection
        self.queues = queues
        self.taken = taken
        self.interval = settings.metrics_interval
        self.topic = metrics_topic(settings)
        self._since = time.time()
        self._stopping = threading.Event()
        self._admin: Admin | None = None
        self._sizes_failed = False
        self._thread = threading.Thread(target=self._run, name="pulsarjobs-metrics-reports",
                                        daemon=True)  # fmt: skip

    @classmethod
    def start(
        cls,
        name: str,
        settings: Settings,
        connection: Connection,
        queues: Sequence[str],
        taken: Callable[[], Sequence[Row]] = tuple,
    ) -> MetricsWriter | None:
        """None when metrics are off (metrics_interval 0). Call from a thread that may block."""
        if not settings.metrics_interval:
            return None
        writer = cls(name, settings, connection, queues, taken)
        try:
            connection.producer(writer.topic)  # the topic exists: set its retention
            keep_for(settings, writer.topic, KEPT_MINUTES)
        except PulsarJobsError as exc:
            log.warning("metrics by job type are not published", error=error_text(exc))
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
            self.report(last=True)
        finally:
            if self._admin is not None:
                self._admin.close()

    def report(self, last: bool = False) -> None:
        """One report: stamped with the minute the middle of its period falls in (a period
        that starts at a minute's turn is that minute's). The `last`, as it stops, carries
        what was counted only, if anything: no admin calls while its process shuts down."""
        now = time.time()
        minute = int((self._since + now) / 2 // 60)
        self._since = now
        rows = tuple(self.taken())
        if last and not rows:
            return
        report = Report(self.name, minute, rows, () if last else self.queue_sizes())
        try:
            stored = self.connection.publish(self.topic, report.encode())
            stored.result(SEND_TIMEOUT_S)
        except Exception as exc:
            log.warning("a metrics report was not stored", error=error_text(exc))

    def queue_sizes(self) -> tuple[QueueSize, ...]:
        """The queues' stored, unacknowledged jobs, and the oldest one's age, as the broker's
        stats say (one admin call a topic); every process reporting a queue writes it, and the
        reader keeps the latest of each minute. Best effort: none when the admin API fails."""
        try:
            if self._admin is None:
                self._admin = Admin.of(self.settings, timeout=5.0)
            return tuple(self._queue_size(self._admin, queue) for queue in self.queues)
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
