"""Commands to running workers: `quiet` (stop fetching jobs) and `stop` (shut down gracefully).

They travel on the topic `pulsarjobs-control` of the namespace. Each worker reads it with a
reader that starts at the latest message when the worker starts, so it only ever sees commands
sent while it runs, and the topic keeps no subscription that would make it hold messages.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

import pulsar

from pulsarjobs.clock import utc_now
from pulsarjobs.settings import Settings
from pulsarjobs.transport.topics import control_topic, workers_topic
from pulsarjobs.wire.heartbeat import Heartbeat, WorkerState
from pulsarjobs.wire.records import decode_record, encode_record, instant

Command = Literal["quiet", "stop"]
COMMANDS: tuple[Command, ...] = get_args(Command)
CONFIRMED_BY: dict[Command, set[WorkerState]] = {
    "quiet": {"quiet", "stopping", "stopped"},
    "stop": {"stopping", "stopped"},
}


@dataclass(frozen=True, slots=True)
class CommandMessage:
    """One command to one worker, as it travels on the control topic."""

    worker: str
    command: Command
    sent_at: datetime

    def encode(self) -> bytes:
        return encode_record(
            {"worker": self.worker, "command": self.command, "sent_at": self.sent_at}
        )

    @classmethod
    def decode(cls, data: bytes) -> CommandMessage:
        """Raises ValueError for a message that is no worker command."""
        message = decode_record(
            data, "worker command", lambda f: cls(f["worker"], f["command"], instant(f["sent_at"]))
        )
        if message.command not in COMMANDS:
            raise ValueError(f"unknown command {message.command!r}")
        return message


def tell(
    client: pulsar.Client, settings: Settings, worker: str, command: Command, wait: float
) -> Heartbeat | None:
    """Send `command` to `worker`; with `wait` seconds, return the heartbeat in which the worker
    confirms it (None when none came in time)."""
    return tell_each(client, settings, [worker], command, wait)[worker]


def tell_each(
    client: pulsar.Client,
    settings: Settings,
    workers: Sequence[str],
    command: Command,
    wait: float,
) -> dict[str, Heartbeat | None]:
    """Send `command` to each of `workers` at once and wait up to `wait` seconds in all for their
    confirmations: each worker's confirming heartbeat, or None."""
    # Listen before sending: the confirmations may come at once.
    beats = client.create_reader(workers_topic(settings), pulsar.MessageId.latest) if wait else None
    try:
        producer = client.create_producer(control_topic(settings), batching_enabled=False)
        try:
            for worker in workers:
                message = CommandMessage(worker, command, utc_now())
                producer.send(message.encode(), partition_key=worker)
        finally:
            producer.close()
        confirmed = {} if beats is None else confirmations(beats, set(workers), command, wait)
        return {worker: confirmed.get(worker) for worker in workers}
    finally:
        if beats is not None:
            beats.close()


def confirmations(
    beats: pulsar.Reader, workers: set[str], command: Command, wait: float
) -> dict[str, Heartbeat]:
    confirmed: dict[str, Heartbeat] = {}
    deadline = time.monotonic() + wait
    while len(confirmed) < len(workers) and (left := deadline - time.monotonic()) > 0:
        try:
            message = beats.read_next(timeout_millis=max(1, int(left * 1000)))
        except pulsar.Timeout:
            break
        if (worker := message.partition_key()) not in workers:
            continue
        try:
            beat = Heartbeat.decode(message.data())
        except ValueError:
            continue
        if beat.state in CONFIRMED_BY[command]:
            confirmed[worker] = beat
    return confirmed
