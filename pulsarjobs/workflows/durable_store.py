"""Where durable jobs' completed steps are stored: the namespace's compacted topic
`pulsarjobs-steps`, one message per step keyed `<job id>/<step name>`, an Avro record of the
step's value (the `Value` of job arguments and results) and when it was stored.

The topic is kept as marks topics are (transport/marks.py): a subscription that never
acknowledges, and compaction, so that reading it reads one message per key. A run of a durable
job reads it to its end before its first step, so that a step stored by a worker that died
since is seen. Nothing deletes a step's value yet: it is kept for good (docs/workflows.md).
"""

from __future__ import annotations

import io
from concurrent.futures import Future
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

import fastavro

from pulsarjobs.transport import marks
from pulsarjobs.transport.topics import steps_topic
from pulsarjobs.wire.result_schema import RESULT_SCHEMA
from pulsarjobs.wire.values import from_value, to_value

if TYPE_CHECKING:
    from pulsarjobs.settings import Settings
    from pulsarjobs.transport.connection import Connection

_VALUE = next(field["type"] for field in RESULT_SCHEMA["fields"] if field["name"] == "value")
STEP_SCHEMA: Final[dict[str, Any]] = {
    "type": "record",
    "name": "StoredStep",
    "namespace": "io.pulsarjobs.v1",
    "doc": "A durable job's completed step: its value, keyed <job id>/<step name>.",
    "fields": [
        {"name": "stored_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "value", "type": _VALUE},
    ],
}
_PARSED: Final = fastavro.parse_schema(STEP_SCHEMA)


def encode_step(value: Any, now: datetime) -> bytes:
    """Raises Unencodable for a value that is no job argument."""
    stream = io.BytesIO()
    fastavro.schemaless_writer(stream, _PARSED, {"stored_at": now, "value": to_value(value)})
    return stream.getvalue()


def decode_step(data: bytes) -> Any:
    record = fastavro.schemaless_reader(io.BytesIO(data), _PARSED, None)
    value = record["value"]  # type: ignore[call-overload, index]
    return None if value is None else from_value(value)


def step_key(job_id: str, name: str) -> str:
    return f"{job_id}/{name}"


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

    def read(self, job_id: str) -> dict[str, bytes]:
        """Reads the whole compacted topic: one message per step of every job it keeps."""
        prefix = step_key(job_id, "")
        table = marks.read(self.app.connection, steps_topic(self.app.settings))
        return {key[len(prefix) :]: data for key, data in table.items() if key.startswith(prefix)}

    def write(self, job_id: str, name: str, data: bytes) -> Future[None]:
        connection, topic = self.app.connection, steps_topic(self.app.settings)
        connection.keep_marks(topic)  # once per process: the read before made it so
        return connection.publish(topic, data, key=step_key(job_id, name))
