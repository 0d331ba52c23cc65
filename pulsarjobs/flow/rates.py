"""Rate limits: at most N jobs of a queue start a second, across every worker, enforced by the
broker.

A queue's rate limit is the subscription dispatch rate of its topics (a topic policy): the
broker hands the workers' subscription at most N messages a second from each of the queue's
topics (its jobs, its retries, its ordered jobs), however many workers read it. Workers start
what they are handed, so starts follow the rate once the jobs they had fetched before the
limit was set have run.
"""

from __future__ import annotations

from pulsarjobs.errors import ConfigurationError, NotFound
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.topics import QueueTopics, topics_for


def set_rate_limit(connection: Connection, queue: str, per_second: int | None) -> None:
    """At most `per_second` starts a second of the queue's jobs; None: no limit."""
    if per_second is not None and per_second < 1:
        raise ConfigurationError(f"a rate limit is a whole number >= 1 a second, got {per_second}")
    if connection.in_memory:  # a TestRunner's: no broker to reach, and no pacing in memory
        return
    settings = connection.settings
    topics = topics_for(settings, queue)
    for topic in rated_topics(topics):  # the admin API sets policies of existing topics
        connection.prepare_queue(topic, settings.subscription, key_shared=topic == topics.ordered)
    with Admin(settings.admin_url, token=settings.token) as admin:
        for topic in rated_topics(topics):
            admin.set_dispatch_rate(topic, per_second)


def rate_limit(admin: Admin, topics: QueueTopics) -> int | None:
    """The queue's rate limit, as set on its jobs topic; None: none (or no such topic)."""
    try:
        return admin.dispatch_rate(topics.jobs)
    except NotFound:
        return None


def rated_topics(topics: QueueTopics) -> tuple[str, ...]:
    return (topics.jobs, topics.retry, topics.ordered)
