"""Where durable jobs' completed steps are stored: the namespace's compacted topic
`pulsarjobs-steps`, one message per step keyed `<job id>/<step name>`, an Avro record of the
step's value (the `Value` of job arguments and results), when it was stored, when the step
started, and whether it is a sleep (`kind`).

Records are schemaless Avro: a version adds fields at the end only, so that a record is read
with the newest schema it was written with (`decode_record` tries STEP_SCHEMA, then the first
version's), and an older reader still reads a newer record's first fields.

The topic is kept as marks topics are (transport/marks.py): a subscription that never
acknowledges, and compaction, so that reading it reads one message per key. A run of a durable
job reads it to its end before its first step, so that a step stored by a worker that died
since is seen: each process keeps one reader and what it read, so that a run reads only what
was stored since the last one (the first reads the whole topic). Nothing deletes a step's value
yet: it is kept for good (docs/workflows.md).
"""

from __future__ import annotations

import contextlib
import io
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, get_args

import fastavro
import pulsar

from pulsarjobs.transport import marks
from pulsarjobs.transport.connection import client_errors
from pulsarjobs.transport.topics import steps_topic
from pulsarjobs.wire.result_schema import RESULT_SCHEMA
from pulsarjobs.wire.values import from_value, to_value

if TYPE_CHECKING:
    from pulsarjobs.settings import Settings
    from pulsarjobs.transport.connection import Connection

_VALUE = next(field["type"] for field in RESULT_SCHEMA["fields"] if field["name"] == "value")
_INSTANT: Final = {"type": "long", "logicalType": "timestamp-millis"}
# A sleep's value is its wake-up time, in epoch millis; a wait's, its outcome (signals.py); an
# internal record is the bookkeeping of waits and child jobs (a deadline, a claim, a child sent).
StepKind = Literal["step", "sleep", "wait", "cursor", "internal"]  # cursor: iterate's position
FIRST_STEP_SCHEMA: Final[dict[str, Any]] = {  # what the first version wrote, read still
    "type": "record",
    "name": "StoredStep",
    "namespace": "io.pulsarjobs.v1",
    "doc": "A durable job's completed step: its value, keyed <job id>/<step name>.",
    "fields": [
        {"name": "stored_at", "type": _INSTANT},
        {"name": "value", "type": _VALUE},
    ],
}
STEP_SCHEMA: Final[dict[str, Any]] = {
    **FIRST_STEP_SCHEMA,
    "fields": [
        *FIRST_STEP_SCHEMA["fields"],
        {"name": "started_at", "type": ["null", _INSTANT], "default": None},
        {
            "name": "kind",
            "type": {
                "type": "enum",
                "name": "StepKind",
                "symbols": list(get_args(StepKind)),
                "default": "step",  # what a reader makes of a kind newer than itself
            },
            "default": "step",
        },
    ],
}
_PARSED: Final = fastavro.parse_schema(STEP_SCHEMA)
_FIRST: Final = fastavro.parse_schema(FIRST_STEP_SCHEMA)


@dataclass(frozen=True, slots=True)
class StoredStep:
    """A step as stored: its value, when it was stored and, for a step, when it started."""

    value: Any
    stored_at: datetime
    started_at: datetime | None  # None for a sleep, and in records of the first version
    kind: StepKind
    wakes_at: datetime | None  # a sleep's wake-up time: its value, in epoch millis


def encode_step(
    value: Any, now: datetime, started_at: datetime | None = None, kind: StepKind = "step"
) -> bytes:
    """Raises Unencodable for a value that is no job argument."""
    record = {"stored_at": now, "value": to_value(value), "started_at": started_at, "kind": kind}
    stream = io.BytesIO()
    fastavro.schemaless_writer(stream, _PARSED, record)
    return stream.getvalue()


def decode_step(data: bytes) -> Any:
    return decode_record(data).value


def decode_record(data: bytes) -> StoredStep:
    try:
        record: Any = fastavro.schemaless_reader(io.BytesIO(data), _PARSED, None)
    except EOFError:  # written by the first version: its fields end sooner
        record = fastavro.schemaless_reader(io.BytesIO(data), _FIRST, _PARSED)
    value: Any = None if record["value"] is None else from_value(record["value"])
    wakes_at = None
    if record["kind"] == "sleep":
        wakes_at = datetime.fromtimestamp(value / 1000, UTC)
    return StoredStep(value, record["stored_at"], record["started_at"], record["kind"], wakes_at)


JOB_PROPERTY = "pulsarjobs-job"  # a step's job id, as a property: a job id may hold a "/"


def step_key(job_id: str, name: str) -> str:
    return f"{job_id}/{name}"


def split_key(key: str, properties: dict[str, str]) -> tuple[str, str]:
    """A stored step's job id and name."""
    job_id = properties.get(JOB_PROPERTY)
    if job_id is None or not key.startswith(job_id + "/"):
        job_id = key.partition("/")[0]  # stored without the property: the first "/" parts them
    return job_id, key[len(job_id) + 1 :]


class StepStore(Protocol):
    """Where steps are stored: on the broker, or in memory under the TestRunner."""

    def read(self, job_id: str) -> dict[str, bytes]: ...  # the job's steps, by name (blocks)

    def write(self, job_id: str, name: str, data: bytes) -> Future[None]: ...


class Connected(Protocol):
    """An App, as the steps topic is reached through it."""

    connection: Connection
    settings: Settings


class BrokerSteps:
    """The steps topic of the App's namespace, through its connection (which the TestRunner
    swaps: its own store is in memory, stand_ins.py)."""

    def __init__(self, app: Connected) -> None:
        self.app = app
        self._lock = threading.Lock()  # runs of durable jobs read at once
        self._reader: pulsar.Reader | None = None
        # Every step read so far, by job id and name: a run looks up its own job's, whatever
        # the number of steps the process has read.
        self._stored: dict[str, dict[str, bytes]] = {}

    def read(self, job_id: str) -> dict[str, bytes]:
        """The job's steps, by name: what this process read before, and what was stored since."""
        with self._lock:
            try:
                self._catch_up()
            except Exception:
                self._forget()  # a client closed and made anew: read it all again, once
                self._catch_up()
            return dict(self._stored.get(job_id, {}))

    def _catch_up(self) -> None:
        connection, topic = self.app.connection, steps_topic(self.app.settings)
        with client_errors(connection.settings.service_url, f"reading {topic}"):
            if self._reader is None:
                connection.keep_marks(topic)
                self._reader = connection.client.create_reader(
                    topic, pulsar.MessageId.earliest, is_read_compacted=True
                )
            reader = self._reader
            while reader.has_message_available():
                message = reader.read_next(timeout_millis=marks.READ_TIMEOUT_MS)
                job_id, name = split_key(message.partition_key(), message.properties())
                steps, data = self._stored.setdefault(job_id, {}), message.data()
                if data:
                    steps[name] = data
                else:  # removed
                    steps.pop(name, None)

    def _forget(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                self._reader.close()
        self._reader, self._stored = None, {}

    def write(self, job_id: str, name: str, data: bytes) -> Future[None]:
        connection, topic = self.app.connection, steps_topic(self.app.settings)
        connection.keep_marks(topic)  # once per process: the read before made it so
        key, job = step_key(job_id, name), {JOB_PROPERTY: job_id}
        return connection.publish(topic, data, key=key, properties=job)
