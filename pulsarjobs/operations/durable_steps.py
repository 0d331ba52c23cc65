"""A durable job's steps as operators see them: what `Inspector.steps`, `pulsarjobs jobs show` and
the dashboard's job page list, read from the steps topic (workflows/durable_store.py).

Only what completed is stored: a step's value, when it started and was stored; a sleep's
wake-up time. A step that raised stored nothing (its error is the job's last error), and the
step a running job is in is not known by name: the workers' heartbeats say only that it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pulsar

from pulsarjobs.errors import NotFound
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.backlog import Position, position_of
from pulsarjobs.transport.connection import client_errors
from pulsarjobs.transport.topics import signals_topic, steps_topic
from pulsarjobs.workflows.durable_store import StepKind, decode_record, step_key
from pulsarjobs.workflows.signals import WAIT_PREFIX, Waiting

READ_TIMEOUT_MS = 5_000
StepState = Literal["done", "sleeping", "over"]  # a step is done; a sleep, until its wake-up


@dataclass(frozen=True, slots=True)
class DurableStep:
    """One stored step or sleep of a durable job."""

    name: str
    kind: StepKind
    state: StepState
    stored_at: datetime
    started_at: datetime | None  # when the step's function was called (not stored for sleeps)
    seconds: float | None  # how long the step's function took, to storing its value
    value: Any  # as the job got it back; a sleep's is its wake-up time in epoch millis
    wakes_at: datetime | None = None  # a sleep's wake-up time


def read_steps(
    admin: Admin, client: pulsar.Client, settings: Settings, job_id: str, now: datetime
) -> list[DurableStep]:
    """The job's stored steps, in the order they were stored (a name stored twice, by two runs
    at once, where it was stored last); none when no durable job ever stored one here."""
    topic, prefix = steps_topic(settings), step_key(job_id, "")
    try:
        end = admin.last_message_id(topic)  # a reader would create a missing topic
    except NotFound:
        return []
    found: dict[str, bytes] = {}
    with client_errors(settings.service_url, f"reading {topic}"):
        for key, data in _compacted(client, topic, end):
            if key.startswith(prefix):
                found.pop(key, None)  # stored again: at its newest place
                found[key] = data
    steps = [step_of(key[len(prefix) :], data, now) for key, data in found.items() if data]
    return [step for step in steps if step.kind != "internal"]  # a wait's own bookkeeping


def read_waits(admin: Admin, client: pulsar.Client, settings: Settings) -> list[Waiting]:
    """The durable jobs waiting for a signal now (`ctx.wait_for`, child jobs: signals.py), the
    soonest to time out first; none when no job ever waited here."""
    topic = signals_topic(settings)
    try:
        end = admin.last_message_id(topic)
    except NotFound:
        return []
    waits: dict[str, Waiting] = {}
    with client_errors(settings.service_url, f"reading {topic}"):
        for key, data in _compacted(client, topic, end):
            if not key.startswith(WAIT_PREFIX):
                continue
            if not data:
                waits.pop(key, None)
                continue
            with contextlib.suppress(ValueError):  # not ours: someone else wrote to the topic
                waits[key] = Waiting.decode(data)
    return sorted(waits.values(), key=lambda wait: wait.deadline)


def _compacted(client: pulsar.Client, topic: str, end: Position) -> Iterator[tuple[str, bytes]]:
    """Each message's key and data, from the earliest to `end` (the topic's last message as the
    admin API told it). The read stops there rather than when `has_message_available` says
    False: right after a reader is created, the C++ client has been seen to say so wrongly."""
    if end[1] < 0:  # an empty topic
        return
    reader = client.create_reader(topic, pulsar.MessageId.earliest, is_read_compacted=True)
    try:
        while True:
            try:
                message = reader.read_next(timeout_millis=READ_TIMEOUT_MS)
            except pulsar.Timeout:
                return  # `end` was compacted away (a tombstone): nothing is left to read
            yield message.partition_key(), message.data()
            if position_of(message.message_id()) >= end:
                return
    finally:
        reader.close()


def step_of(name: str, data: bytes, now: datetime) -> DurableStep:
    stored = decode_record(data)
    if (wakes_at := stored.wakes_at) is not None:
        state: StepState = "over" if wakes_at <= now else "sleeping"
        return DurableStep(
            name, stored.kind, state, stored.stored_at, None, None, stored.value, wakes_at
        )
    started, seconds = stored.started_at, None
    if started is not None:
        seconds = max(0.0, (stored.stored_at - started).total_seconds())
    return DurableStep(name, stored.kind, "done", stored.stored_at, started, seconds, stored.value)


def asleep_until(steps: list[DurableStep]) -> datetime | None:
    """When the job wakes, while a sleep of it is not over."""
    return next((step.wakes_at for step in reversed(steps) if step.state == "sleeping"), None)


def took_text(step: DurableStep) -> str:
    """How long a step took, as the CLI and the dashboard show it: `120 ms`, `3.4 s`, `-`."""
    if step.seconds is None:
        return "-"
    return f"{step.seconds * 1000:.0f} ms" if step.seconds < 1 else f"{step.seconds:.1f} s"
