"""Dead-letter retention: how long, and how much, of a queue's dead letters the broker keeps.

Unless asked, it keeps them all, for ever: a dead letter leaves only when it is replayed or
purged, and `pulsarjobs queues` and the dashboard say "forever" beside the count. A retention
is two topic policies on the queue's dead-letter topic, which the broker enforces by itself:

- an age, the topic's **message TTL**: the broker acknowledges, on every subscription of the
  topic, the messages published longer ago than that — the dead letters that died that long
  ago. Pulsar's *retention* policy would not do: it keeps acknowledged messages, it never
  removes unacknowledged ones.
- a size, a storage **backlog quota** with the policy `consumer_backlog_eviction`: once the
  unacknowledged dead letters take more than that many bytes, the broker acknowledges the
  oldest until they fit.

Acknowledged dead letters are gone as purged ones are. The broker checks both every so often
(`messageExpiryCheckIntervalInMinutes`, `backlogQuotaCheckIntervalInSeconds`), so a dead letter
may outlive its age by up to that long. What is shown is what is in force: a namespace's
message TTL (`pulsarjobs namespace create --ttl`) applies to dead letters too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from pulsarjobs.errors import ConfigurationError, NotFound
from pulsarjobs.operations.durations import format_duration, format_size, parse_size
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.topics import DEAD_LETTER_SUBSCRIPTION, QueueTopics, topics_for


@dataclass(frozen=True, slots=True)
class DeadRetention:
    """How long and how much of a queue's dead letters are kept; None: no limit."""

    max_age: timedelta | None = None  # removed once they died that long ago
    max_size: int | None = None  # bytes: the oldest removed past it

    def __str__(self) -> str:
        """`forever`, `30d`, `1 GiB` or `30d / 1 GiB`."""
        kept = [format_duration(self.max_age)] if self.max_age else []
        kept += [format_size(self.max_size)] if self.max_size else []
        return " / ".join(kept) or "forever"

    def sentence(self, queue: str) -> str:
        """What becomes of the queue's dead letters, as `queues retention` and the dashboard
        say it."""
        if self.max_age is None and self.max_size is None:
            return (
                f"Dead letters of {queue} are kept forever: none goes unless replayed or deleted."
            )
        rules = []
        if self.max_age is not None:
            rules.append(f"each is removed {format_duration(self.max_age)} after it died")
        if self.max_size is not None:
            rules.append(f"the oldest are removed past {format_size(self.max_size)}")
        return f"Dead letters of {queue} are kept {self}: {'; '.join(rules)}."


KEPT_FOREVER = DeadRetention()


def set_dead_retention(
    connection: Connection,
    queue: str,
    max_age: timedelta | None = None,
    max_size: int | str | None = None,
) -> DeadRetention:
    """Keep the queue's dead letters for `max_age` and/or up to `max_size` bytes (`"1G"` reads
    as 1 GiB); None lifts that limit. Returns what is in force then."""
    size = parse_size(max_size) if isinstance(max_size, str) else max_size
    if max_age is not None and max_age < timedelta(seconds=1):
        raise ConfigurationError(f"dead letters are kept at least 1 s, not {max_age}")
    if size is not None and size < 1:
        raise ConfigurationError(f"dead letters are kept up to at least 1 byte, not {size}")
    ttl = math.ceil(max_age.total_seconds()) if max_age is not None else None
    if connection.in_memory:  # a TestRunner's: no broker to reach; memory keeps them all
        return DeadRetention(None if ttl is None else timedelta(seconds=ttl), size)
    settings = connection.settings
    topics = topics_for(settings, queue)
    # The admin API sets policies of existing topics only; the subscription keeps the dead
    # letters that arrive before any worker made it.
    connection.prepare_queue(topics.dead, DEAD_LETTER_SUBSCRIPTION)
    with Admin.of(settings) as admin:
        admin.set_topic_message_ttl(topics.dead, ttl)
        admin.set_backlog_eviction_size(topics.dead, size)
        return dead_retention(admin, topics, applied=False)


def dead_retention(admin: Admin, topics: QueueTopics, *, applied: bool = True) -> DeadRetention:
    """The queue's dead-letter retention: in force (`applied`: the topic's own policies, else
    the namespace's), or only the topic's own. Forever while it has no dead-letter topic."""
    try:
        ttl = admin.topic_message_ttl(topics.dead, applied=applied)
        size = admin.backlog_eviction_size(topics.dead, applied=applied)
    except NotFound:
        return KEPT_FOREVER
    return DeadRetention(timedelta(seconds=ttl) if ttl else None, size)
