"""Locks by key, held across processes, that a crash gives back.

The broker lets one producer of a given name at a time write to a topic: a second one with that
name is refused (ProducerBusy) until the first closes or its connection drops. So a producer
named after a key is a lock on that key, and the holder writes through it. A process that dies
holding one lets it go as soon as the broker sees its connection close (at once for a killed
process, after the keep-alive for a vanished host).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
from collections.abc import Iterator

import pulsar

from pulsarjobs.errors import BrokerUnavailable
from pulsarjobs.transport.connection import Connection, client_errors

WAIT_S = 30.0  # how long one waits for a lock before giving up
FIRST_BACKOFF_S = 0.005
MAX_BACKOFF_S = 0.2


def lock_name(scope: str, key: str) -> str:
    """A producer name for a key: any string, hashed to a name the broker takes."""
    return f"pulsarjobs-{scope}-{hashlib.sha256(key.encode()).hexdigest()[:40]}"


@contextlib.contextmanager
def key_lock(connection: Connection, topic: str, scope: str, key: str) -> Iterator[pulsar.Producer]:
    """Hold the lock on `key` (within `scope`) while the block runs; yields the producer that
    holds it, to write to `topic` as the holder."""
    name = lock_name(scope, key)
    deadline = time.monotonic() + WAIT_S
    backoff = FIRST_BACKOFF_S
    with client_errors(connection.settings.service_url, f"locking {key!r} on {topic}"):
        while True:
            try:
                producer = connection.client.create_producer(
                    topic, producer_name=name, batching_enabled=False
                )
                break
            except pulsar.ProducerBusy:
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(
                        f"{key!r} stayed locked for {WAIT_S:.0f} s on {topic}: its holder is stuck"
                    ) from None
                time.sleep(backoff * random.uniform(0.5, 1.5))  # contenders spread out
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        try:
            yield producer
        finally:
            with contextlib.suppress(Exception):  # a lost connection let it go already
                producer.close()
