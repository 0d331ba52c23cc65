"""The relay's metrics (`pulsarjobs outbox relay --metrics-port`): its lag, read from the
table at each scrape, so that every relay, leading or standing by, reports the outbox's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import sqlalchemy as sa
import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pulsarjobs.logs import error_text
from pulsarjobs.outbox.relay import Relay

log = structlog.get_logger("pulsarjobs.outbox")


class RelayCollector(Collector):
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "pulsarjobs_outbox_leading",
            "1 while this relay leads (publishes), 0 while it stands by.",
            value=1 if self.relay.is_leading else 0,
        )
        yield CounterMetricFamily(
            "pulsarjobs_outbox_published",
            "Outbox jobs this relay published (the broker stored them).",
            value=self.relay.published,
        )
        yield CounterMetricFamily(
            "pulsarjobs_outbox_duplicates",
            "Unique outbox jobs not published: another job held their key.",
            value=self.relay.duplicates,
        )
        try:
            lag = self.relay.lag()
        except sa.exc.SQLAlchemyError as exc:  # the database away: no lag to report
            log.warning("cannot read the outbox's lag", error=error_text(exc))
            return
        yield GaugeMetricFamily(
            "pulsarjobs_outbox_pending_rows",
            "Rows of the outbox table not yet published.",
            value=lag.pending,
        )
        age = (datetime.now(UTC) - lag.oldest).total_seconds() if lag.oldest else 0.0
        yield GaugeMetricFamily(
            "pulsarjobs_outbox_oldest_pending_seconds",
            "Age of the oldest row not yet published (0 when none is).",
            value=max(age, 0.0),
        )
