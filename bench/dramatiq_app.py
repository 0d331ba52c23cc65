"""Dramatiq on Redis with the same jobs; its default middleware (which has no Prometheus)."""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.record import stamp

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
dramatiq.set_broker(broker)


@dramatiq.actor
def noop(n: int) -> None:
    return None


@dramatiq.actor
def latency(sent_ns: int) -> None:
    stamp(sent_ns)
