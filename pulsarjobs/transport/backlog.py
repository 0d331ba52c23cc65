"""A subscription's backlog, read in order without consuming it.

A reader starts at the subscription's mark-delete position (everything up to it is acknowledged),
or later at a position the caller names (the next page of a listing), and skips the ranges
acknowledged out of order after it, so what it yields is exactly what the subscription still
holds, oldest first, up to the newest message when the scan began. Nothing is delivered to the
subscription's consumers, and the scan never waits for messages to come.

A message is addressed by its position, "ledger:entry" (`parse_position`, `position_text`); one
message is read by its position with a reader that starts there (`read_at`).

A partitioned topic is read partition by partition, merged in the order of positions: ledger ids
are unique across a cluster, so a position names one message of one partition, and "after a
position" means the same on every partition (`partition_holding` finds a position's partition).
"""

from __future__ import annotations

import bisect
import heapq
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import pulsar

from pulsarjobs.errors import NotFound
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.connection import client_errors

Position = tuple[int, int]  # (ledger, entry): the order of messages on a topic
READ_TIMEOUT_MS = 5_000
_RANGE = re.compile(r"\((-?\d+):(-?\d+)\.\.(-?\d+):(-?\d+)\]")
_POSITION = re.compile(r"(\d+):(\d+)")


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far a subscription has acknowledged: all up to `mark_delete`, and the ranges in
    `acked` ((after, through], as the broker prints them) beyond it."""

    mark_delete: Position
    acked: tuple[tuple[Position, Position], ...] = ()

    @classmethod
    def parse(cls, cursor_stats: dict[str, Any]) -> Cursor:
        """From a cursor of the topic's internal stats."""
        ledger, entry = cursor_stats["markDeletePosition"].split(":")
        ranges = _RANGE.findall(cursor_stats.get("individuallyDeletedMessages", ""))
        acked = tuple(((int(a), int(b)), (int(c), int(d))) for a, b, c, d in ranges)
        return cls((int(ledger), int(entry)), acked)

    def is_acked(self, position: Position) -> bool:
        if position <= self.mark_delete:
            return True
        # The ranges are sorted and apart: only the last one starting before `position` counts.
        index = bisect.bisect_left(self.acked, position, key=lambda acked: acked[0]) - 1
        return index >= 0 and position <= self.acked[index][1]


def position_of(message_id: pulsar.MessageId) -> Position:
    return message_id.ledger_id(), message_id.entry_id()


def position_text(position: Position) -> str:
    return f"{position[0]}:{position[1]}"


def parse_position(text: str) -> Position:
    """ "ledger:entry", as `position_text` writes it; ValueError for anything else."""
    match = _POSITION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a message position; write it as ledger:entry, e.g. 12:0")
    return int(match[1]), int(match[2])


def subscription_cursor(admin: Admin, topic: str, subscription: str) -> Cursor | None:
    """How far `subscription` has acknowledged `topic`; None when either does not exist."""
    try:
        cursor_stats = admin.internal_stats(topic)["cursors"].get(subscription)
    except NotFound:
        return None
    return Cursor.parse(cursor_stats) if cursor_stats is not None else None


def read_backlog(
    admin: Admin,
    client: pulsar.Client,
    service_url: str,
    topic: str,
    subscription: str,
    after: Position | None = None,
    crypto: pulsar.CryptoKeyReader | None = None,
) -> Generator[pulsar.Message]:
    """The messages `subscription` has not acknowledged on `topic` (after the position `after`),
    oldest first (on a partitioned topic: in the order of positions, each partition oldest
    first); nothing when the topic or the subscription does not exist. `crypto`: the private
    key of end-to-end encrypted jobs; one it cannot decrypt is read as ciphertext."""
    parts = admin.parts(topic)
    if len(parts) == 1:
        yield from _read_part(admin, client, service_url, topic, subscription, after, crypto)
        return
    reads = [
        _read_part(admin, client, service_url, part, subscription, after, crypto) for part in parts
    ]
    try:
        yield from heapq.merge(*reads, key=lambda message: position_of(message.message_id()))
    finally:
        for read in reads:
            read.close()


def _read_part(
    admin: Admin,
    client: pulsar.Client,
    service_url: str,
    topic: str,
    subscription: str,
    after: Position | None,
    crypto: pulsar.CryptoKeyReader | None,
) -> Generator[pulsar.Message]:
    cursor = subscription_cursor(admin, topic, subscription)
    if cursor is None:
        return
    try:
        end = admin.last_message_id(topic)
    except NotFound:
        return
    begin = max(cursor.mark_delete, after) if after is not None else cursor.mark_delete
    if end <= begin:
        return
    start = pulsar.MessageId(ledger_id=begin[0], entry_id=begin[1])
    with client_errors(service_url, f"reading {topic}"):
        reader = open_reader(client, topic, start, crypto)
    try:
        for position, message in read_through(reader, end, service_url, topic):
            if not cursor.is_acked(position):
                yield message
    finally:
        reader.close()


def read_through(
    reader: pulsar.Reader,
    end: Position,
    service_url: str,
    topic: str,
    before: Position | None = None,
) -> Iterator[tuple[Position, pulsar.Message]]:
    """What `reader` reads next, each message with its position, through `end` (the newest
    message when the read began) and, if given, short of `before`."""
    while True:
        with client_errors(service_url, f"reading {topic}"):
            try:
                message = reader.read_next(timeout_millis=READ_TIMEOUT_MS)
            except pulsar.Timeout:
                if reader.has_message_available():
                    raise
                return  # the end we were told of is not a message a reader sees
        position = position_of(message.message_id())
        if position > end or (before is not None and position >= before):
            return
        yield position, message
        if position == end:
            return


def read_at(
    admin: Admin,
    client: pulsar.Client,
    service_url: str,
    topic: str,
    position: Position,
    crypto: pulsar.CryptoKeyReader | None = None,
) -> pulsar.Message | None:
    """The message at `position` on `topic`; None when there is none (any more), or no topic
    (which a reader would create)."""
    try:
        if admin.last_message_id(topic) < position:
            return None
    except NotFound:
        return None
    start = pulsar.MessageId(ledger_id=position[0], entry_id=position[1])
    with client_errors(service_url, f"reading {topic}"):
        reader = open_reader(client, topic, start, crypto, inclusive=True)
        try:
            message = reader.read_next(timeout_millis=READ_TIMEOUT_MS)
        except pulsar.Timeout:
            return None
        finally:
            reader.close()
    return message if position_of(message.message_id()) == position else None


def open_reader(
    client: pulsar.Client,
    topic: str,
    start: pulsar.MessageId,
    crypto: pulsar.CryptoKeyReader | None,
    inclusive: bool = False,
) -> pulsar.Reader:
    """A reader that never stalls on an encrypted message it cannot decrypt (the client's
    default holds it back, and every message after it): it is read as it is, ciphertext."""
    return client.create_reader(
        topic,
        start,
        start_message_id_inclusive=inclusive,
        crypto_key_reader=crypto,
        crypto_failure_action=pulsar.ConsumerCryptoFailureAction.CONSUME,
    )


def unreadable_why(message: pulsar.Message) -> str:
    """Why a message holds no job pulsarjobs can read."""
    context = message.encryption_context()
    if context is not None and context.is_decryption_failed():
        return "end-to-end encrypted: no private key here decrypts it"
    return "not a job envelope"


def partition_holding(admin: Admin, topic: str, position: Position) -> str | None:
    """The topic that holds `position`: the topic itself, or the partition of a partitioned
    one whose ledgers include the position's; None when no partition does."""
    parts = admin.parts(topic)
    if len(parts) == 1:
        return topic
    for part in parts:
        try:
            ledgers = admin.internal_stats(part).get("ledgers", [])
        except NotFound:
            continue
        if any(int(ledger["ledgerId"]) == position[0] for ledger in ledgers):
            return part
    return None
