"""The broker's answers to what a process sends: a group's acks, and messages answered together.

Each message's answer comes on the client's thread. Taken by a Python function, it makes that
thread take the interpreter's lock from the sender at each message, in turns with it: that cost
an enqueue of many jobs about 20 µs of CPU each (bench/job_index_cost.py, unindexed). Messages
sent together to a producer that answers in order (a topic not partitioned) therefore take their
answers with a builtin, `dict.__setitem__`, into a slot each, and the last message's answer,
taken in Python and coming after theirs, tells them all.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from datetime import datetime
from typing import Any, NamedTuple

import pulsar

from pulsarjobs.errors import EnqueueError, PayloadTooLarge

SEND_TIMEOUT_MS = 30_000


class Acks:
    """The broker's acks for messages sent together: `stored` completes once every one came,
    or fails with the first failure. One future per group, not one per message: a future and
    its wake-up per message cost more than the send itself."""

    def __init__(self, expected: int) -> None:
        self.stored: Future[None] = Future()
        self._left = expected
        self._lock = threading.Lock()
        if expected <= 0:
            self.stored.set_result(None)

    def ok(self, message_id: object = None) -> None:  # where it is stored: job_index.py
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            with contextlib.suppress(InvalidStateError):  # a failure came first
                self.stored.set_result(None)

    def failed(self, failure: Exception) -> None:
        with contextlib.suppress(InvalidStateError):  # only the first failure is told
            self.stored.set_exception(failure)


class Outgoing(NamedTuple):
    """One message to send, and whom its answer goes to."""

    topic: str
    data: bytes
    deliver_at: datetime | None
    properties: dict[str, str] | None
    key: str | None  # the message key: a key's messages stay in order, on one partition
    acks: Acks


def send_options(
    deliver_at: datetime | None, properties: dict[str, str] | None, key: str | None
) -> dict[str, Any]:
    """A producer's `send_async` options for a message due `deliver_at`, with its message key."""
    options: dict[str, Any] = {"properties": properties} if properties else {}
    if deliver_at is not None:
        options["deliver_at"] = int(deliver_at.timestamp() * 1000)
    if key is not None:
        options["partition_key"] = key
    return options


def message_options(message: Outgoing) -> dict[str, Any]:
    return send_options(message.deliver_at, message.properties, message.key)


def tell(message: Outgoing, result: Any, message_id: Any) -> None:
    """Tell the message's acks the broker's answer."""
    if result == pulsar.Result.Ok:
        message.acks.ok(message_id)
    else:
        message.acks.failed(send_failure(message.topic, result, len(message.data)))


def send_each(producer: pulsar.Producer, message: Outgoing) -> None:
    """Send one message, its answer taken in Python."""

    def answered(result: Any, message_id: Any) -> None:
        tell(message, result, message_id)

    producer.send_async(message.data, answered, **message_options(message))


def send_in_order(producer: pulsar.Producer, messages: Sequence[Outgoing]) -> None:
    """Send messages on a producer that answers in order; one answer in Python tells them all."""
    *first, last = messages
    slots: list[dict[Any, Any]] = [{} for _ in first]  # the broker's result: the message id

    def answered(result: Any, message_id: Any) -> None:
        for message, slot in zip(first, slots, strict=True):
            if slot:
                ((earlier_result, earlier_id),) = slot.items()
                tell(message, earlier_result, earlier_id)
            else:  # still on its way: only where the last one failed at once, as the group does
                message.acks.failed(EnqueueError(f"No answer yet from the broker on {last.topic}."))
        tell(last, result, message_id)

    for message, slot in zip(first, slots, strict=True):
        producer.send_async(message.data, slot.__setitem__, **message_options(message))
    producer.send_async(last.data, answered, **message_options(last))


def too_large(topic: str, size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"A job of {size} bytes is larger than the {limit} bytes the broker accepts on {topic}: "
        "pass a reference (a URL, a key) instead of the data."
    )


def send_failure(topic: str, result: Any, size: int) -> EnqueueError:
    if result == pulsar.Result.MessageTooBig:
        return PayloadTooLarge(
            f"A job of {size} bytes is larger than the broker accepts on {topic}: "
            "pass a reference (a URL, a key) instead of the data."
        )
    if result == pulsar.Result.Timeout:
        return EnqueueError(
            f"The broker did not confirm the job on {topic} within {SEND_TIMEOUT_MS // 1000} s; "
            "it was not enqueued."
        )
    return EnqueueError(f"The broker refused the job on {topic}: {result}")
