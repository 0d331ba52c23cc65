"""The metrics topic read back: workers' reports (wire/type_metrics.py) summed by minute, and
views of the last hour, day or week for the dashboard's Metrics page.

The history reads the topic once from its start (up to a couple of weeks of reports: the
topic keeps them that long), then at each look only what was published since — as key_table.py
reads a compacted topic — so a page of 7 days costs a read of the last few reports. It holds
one summed row per (minute, job type, queue) and one queue size per (minute, queue) for the
last 2 hours (the 1-hour view and its trend), then per 10 minutes up to 50 hours (the 24-hour
view's points and its trend), then per hour (the 7-day view's): about 750 rows per (type,
queue), a few MB for a busy namespace, whatever the number of workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulsar
import structlog

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.transport.connection import Connection, client_errors
from pulsarjobs.transport.topics import metrics_topic
from pulsarjobs.wire.type_metrics import (
    RUN_BUCKETS,
    WAIT_BUCKETS,
    QueueSize,
    Report,
    Row,
    percentile,
)

log = structlog.get_logger("pulsarjobs.metrics_history")

READ_TIMEOUT_MS = 5_000
KEEP_MINUTES = 14 * 24 * 60  # in memory: the longest view and the one before it (its trend)
FOLDS = ((120, 10), (3000, 60))  # minutes older than the first, summed into slots of the second


@dataclass(frozen=True)
class Range:
    name: str
    minutes: int  # how far back it looks
    step: int  # minutes a point of its charts sums


RANGES = {r.name: r for r in (Range("1h", 60, 1), Range("24h", 24 * 60, 10),
                              Range("7d", 7 * 24 * 60, 60))}  # fmt: skip


def range_named(name: str) -> Range:
    try:
        return RANGES[name]
    except KeyError:
        raise ConfigurationError(
            f"range must be one of {', '.join(RANGES)}, got {name!r}"
        ) from None


class MetricsHistory:
    """What the workers reported, by minute, as this process last read it."""

    def __init__(self, connection: Callable[[], Connection]) -> None:
        self.connection = connection  # opened at the first look
        self._rows: dict[int, dict[tuple[str, str], Row]] = {}  # minute -> (type, queue) -> sum
        self._sizes: dict[int, dict[str, QueueSize]] = {}  # minute -> queue -> latest
        self.read = 0  # reports read so far: each once
        self._reader: pulsar.Reader | None = None
        self._reading = threading.Lock()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def add(self, report: Report) -> None:
        rows = self._rows.setdefault(report.minute, {})
        for row in report.rows:
            summed = rows.get((row.type, row.queue))
            if summed is None:
                summed = rows[row.type, row.queue] = Row(row.type, row.queue)
            summed.add(row)
        sizes = self._sizes.setdefault(report.minute, {})
        for size in report.queues:
            sizes[size.queue] = size  # the latest report of the minute

    def catch_up(self) -> None:
        """Read what was published since the last look (all of it, the first time)."""
        connection = self.connection()
        topic = metrics_topic(connection.settings)
        with client_errors(connection.settings.service_url, f"reading {topic}"):
            if self._reader is None:
                self._reader = connection.client.create_reader(topic, pulsar.MessageId.earliest)
            while self._reader.has_message_available():
                data = self._reader.read_next(timeout_millis=READ_TIMEOUT_MS).data()
                self.read += 1
                try:
                    self.add(Report.decode(data))
                except ValueError as exc:
                    log.warning("not a metrics report; skipped", error=str(exc))
        self.fold(int(time.time() // 60))

    def fold(self, now: int) -> None:
        """Forget what is older than KEEP_MINUTES, and sum older minutes into longer slots."""
        for minutes in (self._rows, self._sizes):
            for minute in [m for m in minutes if m < now - KEEP_MINUTES]:
                del minutes[minute]
        for age, size in FOLDS:
            self._fold(now - age, size)

    def _fold(self, before: int, size: int) -> None:
        """Sum the minutes before `before` into slots of `size` minutes (stamped with their
        first); a queue's size in a slot is its last."""
        for minute in sorted(m for m in self._rows.keys() | self._sizes.keys()
                             if m < before and m % size):  # fmt: skip
            slot = minute - minute % size
            rows = self._rows.setdefault(slot, {})
            for key, row in self._rows.pop(minute, {}).items():
                if (summed := rows.get(key)) is None:
                    rows[key] = row
                else:
                    summed.add(row)
            self._sizes.setdefault(slot, {}).update(self._sizes.pop(minute, {}))

    def view(self, name: str, now: float | None = None) -> dict[str, Any]:
        """The page's figures over the range `name` (1h, 24h, 7d), up to the current minute."""
        span = range_named(name)
        with self._reading:
            self.catch_up()
            return self._view(span, int((now or time.time()) // 60))

    @property
    def slots(self) -> int:
        """How many minutes or longer slots it holds rows of."""
        return len(self._rows)

    def _view(self, span: Range, last: int) -> dict[str, Any]:
        end = (last // span.step + 1) * span.step  # points end with the one `last` is in
        first = end - span.minutes
        points = span.minutes // span.step
        at = [(first + i * span.step) * 60 for i in range(points)]
        now: dict[str, Row] = {}
        before: dict[str, Row] = {}
        by_type: dict[str, list[int]] = {}
        by_queue: dict[str, list[int]] = {}
        for minute, rows in self._rows.items():
            if first - span.minutes <= minute < first:
                for row in rows.values():
                    before.setdefault(row.type, Row(row.type, "")).add(row)
            elif first <= minute < end:
                point = (minute - first) // span.step
                for row in rows.values():
                    now.setdefault(row.type, Row(row.type, "")).add(row)
                    by_type.setdefault(row.type, [0] * points)[point] += row.processed
                    by_queue.setdefault(row.queue, [0] * points)[point] += row.processed
        sizes: dict[str, list[int | None]] = {}
        oldest: dict[str, list[float | None]] = {}
        for minute in sorted(m for m in self._sizes if first <= m < end):
            point = (minute - first) // span.step
            for size in self._sizes[minute].values():  # the point's last minute stays
                sizes.setdefault(size.queue, [None] * points)[point] = size.size
                oldest.setdefault(size.queue, [None] * points)[point] = size.oldest_seconds
        types = [type_row(now[t], before.get(t)) for t in sorted(now)]
        return {
            "range": span.name,
            "ranges": list(RANGES),
            "step_seconds": span.step * 60,
            "types": types,
            "series": {"at": at, "types": by_type, "queues": by_queue, "sizes": sizes,
                       "oldest": oldest},
        }  # fmt: skip


def type_row(row: Row, before: Row | None) -> dict[str, Any]:
    """A job type's line of the table: its runs and how they went, and the trend of its runs
    against the period before (None: it had none then)."""
    runs, previous = row.processed, before.processed if before else 0
    return {
        "type": row.type,
        "runs": runs,
        "done": row.counts.get("done", 0),
        "failed": row.failed,
        "retried": row.counts.get("retried", 0),
        "dead": row.counts.get("dead", 0),
        "failure_rate": row.failed / runs if runs else 0.0,
        "run_p50": percentile(RUN_BUCKETS, row.run, 0.5),
        "run_p95": percentile(RUN_BUCKETS, row.run, 0.95),
        "wait_p50": percentile(WAIT_BUCKETS, row.wait, 0.5),
        "wait_p95": percentile(WAIT_BUCKETS, row.wait, 0.95),
        "previous_runs": previous,
        "trend": (runs - previous) / previous if previous else None,
    }
