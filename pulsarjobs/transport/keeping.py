"""How long the broker keeps a topic's messages: compaction of keyed topics (heartbeats, marks)
and the message TTL of the results topic. Asked of the admin API, best effort."""

from __future__ import annotations

import structlog

from pulsarjobs.errors import PulsarJobsError
from pulsarjobs.logs import error_text
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.wire.heartbeat import COMPACTION_THRESHOLD_BYTES

log = structlog.get_logger("pulsarjobs.keeping")


def keep_compacted(settings: Settings, topic: str) -> None:
    """Ask the broker to compact a keyed topic (heartbeats, marks); without it, reading the
    latest value of each key would read every message ever sent. Best effort: the admin API
    may be out of reach."""
    try:
        with Admin.of(settings, timeout=5.0) as admin:
            admin.set_compaction_threshold(topic, COMPACTION_THRESHOLD_BYTES)
    except PulsarJobsError as exc:
        log.warning("cannot set compaction on a topic", topic=topic, error=error_text(exc))


def keep_results_for(settings: Settings, topic: str, seconds: float) -> None:
    """Have the results topic keep messages at least `seconds` (its message TTL only grows:
    every app writing there keeps its results as long as it asked). Best effort: results are
    stored whatever the admin API says, and a topic without a TTL keeps them for good."""
    wanted = max(1, int(seconds) + 1)
    try:
        with Admin.of(settings, timeout=5.0) as admin:
            current = admin.topic_message_ttl(topic)
            if current is None or current < wanted:
                admin.set_topic_message_ttl(topic, wanted)
    except PulsarJobsError as exc:
        log.warning("cannot set how long results are kept", topic=topic, error=error_text(exc))


def keep_for(settings: Settings, topic: str, minutes: int) -> None:
    """Have a topic no one subscribes to keep its messages `minutes` (the metrics topic).
    Best effort: without it, the broker drops them once their ledger is full."""
    try:
        with Admin.of(settings, timeout=5.0) as admin:
            if (admin.topic_retention(topic) or 0) < minutes:
                admin.set_topic_retention(topic, minutes)
    except PulsarJobsError as exc:
        log.warning("cannot set how long a topic keeps messages", topic=topic,
                    error=error_text(exc))  # fmt: skip
