"""A subscription's backlog read newest first, without consuming it.

A Pulsar reader only goes forward, so the backlog is read backwards in chunks: the managed
ledger's internal stats list each ledger with its number of entries, which tells the position
`n` messages before another; a reader started there reads forward up to where the previous
chunk began, and the chunk is yielded reversed. Chunks double (up to MAX_CHUNK), so a first page
of 25 reads FIRST_CHUNK messages however long the topic, and a long scan costs one reader per
chunk. Like `read_backlog`, it yields exactly what the subscription still holds (it skips what was
acknowledged, out of order too), up to the newest message when the scan began.

This takes messages one to an entry (producers without batching), as positions do everywhere in
backlog.py. A partitioned topic is read partition by partition, merged by position, newest first.
"""

from __future__ import annotations

import heapq
from collections.abc import Generator, Iterator
from typing import Any, Literal

import pulsar

from pulsarjobs.errors import NotFound
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.backlog import (
    Cursor,
    Position,
    open_reader,
    position_of,
    read_backlog,
    read_through,
)
from pulsarjobs.transport.connection import client_errors

Order = Literal["newest", "oldest"]  # of a listing: newest first, or oldest first
ORDERS: tuple[Order, ...] = ("newest", "oldest")
FIRST_CHUNK = 64  # messages the first reader reads back from the end
MAX_CHUNK = 1_024  # a chunk is read whole first: bounds what a scan stopping midway reads in vain

Spans = list[tuple[int, int]]  # (ledger id, entries it holds), oldest ledger first


def read_backlog_ordered(
    admin: Admin,
    client: pulsar.Client,
    service_url: str,
    topic: str,
    subscription: str,
    order: Order,
    after: Position | None = None,
    crypto: pulsar.CryptoKeyReader | None = None,
) -> Generator[pulsar.Message]:
    """The subscription's backlog in `order`, after the position `after` in that order (newest
    first: older than `after`)."""
    if order == "oldest":
        yield from read_backlog(admin, client, service_url, topic, subscription, after, crypto)
        return
    parts = admin.parts(topic)
    reads = [_newest_first(admin, client, service_url, part, subscription, after, crypto)
             for part in parts]  # fmt: skip
    try:
        key = lambda message: position_of(message.message_id())  # noqa: E731
        yield from heapq.merge(*reads, key=key, reverse=True)
    finally:
        for read in reads:
            read.close()


def _newest_first(
    admin: Admin,
    client: pulsar.Client,
    service_url: str,
    topic: str,
    subscription: str,
    before: Position | None,
    crypto: pulsar.CryptoKeyReader | None,
) -> Generator[pulsar.Message]:
    try:
        stats = admin.internal_stats(topic)
        end = admin.last_message_id(topic)
    except NotFound:
        return
    cursor_stats = stats.get("cursors", {}).get(subscription)
    if cursor_stats is None or end[1] < 0:
        return
    cursor = Cursor.parse(cursor_stats)
    spans = ledger_spans(stats, end)
    top = (end[0], end[1] + 1) if before is None else min(before, (end[0], end[1] + 1))
    chunk = FIRST_CHUNK
    while top > cursor.mark_delete:
        start = step_back(spans, top, chunk)
        last = start is None or start <= cursor.mark_delete
        begin = cursor.mark_delete if last or start is None else start
        found = list(_read_chunk(client, service_url, topic, begin, not last, top, end, crypto))
        yield from (message for message in reversed(found)
                    if not cursor.is_acked(position_of(message.message_id())))  # fmt: skip
        if last:
            return
        top, chunk = begin, min(chunk * 2, MAX_CHUNK)


def _read_chunk(
    client: pulsar.Client,
    service_url: str,
    topic: str,
    begin: Position,
    inclusive: bool,
    top: Position,
    end: Position,
    crypto: pulsar.CryptoKeyReader | None,
) -> Iterator[pulsar.Message]:
    """The messages from `begin` (after it, unless `inclusive`) to before `top`, oldest first."""
    if begin > end or (begin == end and not inclusive):
        return  # nothing to read: a reader would wait READ_TIMEOUT_MS for it
    start = pulsar.MessageId(ledger_id=begin[0], entry_id=begin[1])
    with client_errors(service_url, f"reading {topic}"):
        reader = open_reader(client, topic, start, crypto, inclusive=inclusive)
    try:
        yield from (message for _, message in read_through(reader, end, service_url, topic, top))
    finally:
        reader.close()


def ledger_spans(internal_stats: dict[str, Any], end: Position) -> Spans:
    """Each ledger with the entries it holds, up to the newest message `end` (the stats count an
    open ledger's entries as 0: `end` says how many it has)."""
    ledgers = internal_stats.get("ledgers")
    spans: Spans = []
    for ledger in ledgers if isinstance(ledgers, list) else []:
        ledger_id, entries = int(ledger["ledgerId"]), int(ledger.get("entries", 0))
        if ledger_id < end[0]:
            spans.append((ledger_id, entries))
    spans.append((end[0], end[1] + 1))
    return spans


def step_back(spans: Spans, top: Position, count: int) -> Position | None:
    """The position `count` messages before `top` (which it excludes); None when fewer precede."""
    remaining = count
    for ledger_id, entries in reversed(spans):
        if ledger_id > top[0]:
            continue
        before_top = min(top[1], entries) if ledger_id == top[0] else entries
        if remaining <= before_top:
            return ledger_id, before_top - remaining
        remaining -= before_top
    return None
