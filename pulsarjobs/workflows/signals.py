"""Signals: what resumes durable jobs waiting for an event (`ctx.wait_for`, durable.py).

Signals and waits meet on the namespace's compacted topic `pulsarjobs-signals`, kept as marks
are (transport/marks.py), one message per key:
- `signal/<key>`: the key's latest signal and its payload, kept until `keep_until`;
- `wait/<job id>/<wait>`: a durable job waiting on a key, with the job as it was parked.

A wait is over once its outcome is stored as a step of the job (durable_store.py): a signal's
payload, or that its time ran out. Whoever stores it does so under the wait's lock (keylocks.py),
so it is stored once. `send` stores the signal first, then resumes every job waiting on its key:
it stores the payload as the wait's outcome and sends a copy of the job, due now, marked by a
token of its own (`COPY_META`). A job about to wait registers first, then looks for a kept
signal: of a signal and a wait that cross, one sees the other. The copy of the job parked until
the wait's timeout stays on the broker; the first copy to pass the wait claims it, and any other
ends superseded there (durable.py).
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import pulsar
import structlog

from pulsarjobs.transport import marks
from pulsarjobs.transport.connection import client_errors
from pulsarjobs.transport.keylocks import key_lock
from pulsarjobs.transport.topics import signals_topic, steps_topic
from pulsarjobs.wire.envelope import Envelope, decode
from pulsarjobs.wire.records import decode_record, encode_record, instant
from pulsarjobs.wire.values import Unencodable
from pulsarjobs.wire.verdicts import Outcome
from pulsarjobs.workflows.durable_store import StepStore, decode_step, encode_step

if TYPE_CHECKING:
    from pulsarjobs.clock import Clock
    from pulsarjobs.settings import Settings
    from pulsarjobs.transport.connection import Connection

log = structlog.get_logger("pulsarjobs.signals")

DEFAULT_SIGNAL_KEEP = timedelta(hours=24)  # a signal also resumes jobs that wait this long after
COPY_META = "pulsarjobs-copy"  # in a resumed copy's meta: the token its claims carry
PARENT_META = "pulsarjobs-parent"  # in a child job's meta (`ctx.child`): its parent's id
CHILD_KEEP = timedelta(days=30)  # a child's outcome waits this long for its parent to ask
LOCK_SCOPE = "wait"


@dataclass(frozen=True, slots=True)
class Signal:
    """The latest signal of a key: its payload (stored as a step's value is), kept a while."""

    key: str
    payload: bytes
    sent_at: datetime
    keep_until: datetime

    def encode(self) -> bytes:
        payload = base64.b64encode(self.payload).decode()
        return encode_record({"key": self.key, "payload": payload, "sent_at": self.sent_at,
                              "keep_until": self.keep_until})  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> Signal:
        return decode_record(data, "signal", lambda f: cls(
            f["key"], base64.b64decode(f["payload"]), instant(f["sent_at"]),
            instant(f["keep_until"])))  # fmt: skip

    @property
    def value(self) -> Any:
        return decode_step(self.payload)


@dataclass(frozen=True, slots=True)
class Waiting:
    """A durable job waiting on a key until `deadline`; `job` is its envelope as it parked."""

    job_id: str
    name: str  # the wait's name among the job's steps
    key: str
    job: bytes
    deadline: datetime

    def encode(self) -> bytes:
        return encode_record({"job_id": self.job_id, "name": self.name, "key": self.key,
                              "job": base64.b64encode(self.job).decode(),
                              "deadline": self.deadline})  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> Waiting:
        return decode_record(data, "wait", lambda f: cls(
            f["job_id"], f["name"], f["key"], base64.b64decode(f["job"]),
            instant(f["deadline"])))  # fmt: skip


def signal_key(key: str) -> str:
    return f"signal/{key}"


WAIT_PREFIX = "wait/"  # the keys of waiting jobs on the signals topic


def wait_key(job_id: str, name: str) -> str:
    return f"{WAIT_PREFIX}{job_id}/{name}"


def by_signal(payload: bytes) -> dict[str, Any]:
    """A wait's outcome when a signal ended it (stored as the wait's step)."""
    return {"signal": decode_step(payload)}


TIMED_OUT: dict[str, Any] = {"timed_out": True}  # a wait's outcome when its time ran out


def child_key(job_id: str) -> str:
    """The signal a child job sends its parent once it is over."""
    return f"child:{job_id}"


def child_outcome(outcome: Outcome, now: datetime) -> dict[str, Any]:
    """What a child that is over tells its parent: its value, or why it failed."""
    if outcome.kind.policy.succeeded:
        try:
            encode_step(outcome.value, now)
            return {"value": outcome.value}
        except Unencodable as exc:
            return {"error": {"type": "pulsarjobs.UnpassableResult", "message": str(exc)}}
    error = outcome.envelope.last_error
    if error is not None and not outcome.kind.policy.result_error:
        return {"error": {"type": error.type, "message": error.message}}
    kind = outcome.kind.policy.result_error or str(outcome.kind)
    return {"error": {"type": f"pulsarjobs.{kind}", "message": outcome.reason or str(outcome.kind)}}


class SignalingApp(Protocol):
    """What signals use of the App."""

    connection: Connection
    settings: Settings

    @property
    def clock(self) -> Clock: ...

    @property
    def step_store(self) -> StepStore: ...

    def publish_envelope(self, envelope: Envelope, topic: str | None = None) -> Future[None]: ...


class SignalBoard:
    """The kept signals and the waiting jobs, as this process last read them."""

    def __init__(self, app: SignalingApp) -> None:
        self.app = app
        self.topic = signals_topic(app.settings)
        self._signals: dict[str, Signal] = {}  # by key
        self._waits: dict[str, Waiting] = {}  # by wait_key
        self._reader: pulsar.Reader | None = None
        # One catch-up at a time, and the maps read whole while no thread changes them (runs
        # of durable jobs wait and signals are sent from several threads at once).
        self._reading = threading.RLock()

    # -- signals -----------------------------------------------------------------------------

    def send(self, key: str, payload: Any = None, keep: timedelta = DEFAULT_SIGNAL_KEEP) -> int:
        """Store a signal, then resume the jobs waiting on its key; how many it resumed."""
        now = self.app.clock()
        signal = Signal(key, encode_step(payload, now), now, now + keep)
        self._write(signal_key(key), signal.encode())
        self._catch_up()
        with self._reading:
            waiting = [wait for wait in self._waits.values() if wait.key == key]
        return sum(self._resume(wait, signal) for wait in waiting)

    def kept(self, key: str) -> Signal | None:
        """The key's signal, if one is kept still (reads what was stored since the last look)."""
        self._catch_up()
        signal = self._signals.get(key)
        return signal if signal is not None and signal.keep_until > self.app.clock() else None

    def waiting(self) -> list[Waiting]:
        """Every job waiting now, the soonest to time out first."""
        self._catch_up()
        with self._reading:
            return sorted(self._waits.values(), key=lambda wait: wait.deadline)

    # -- waits -------------------------------------------------------------------------------

    def wait(self, waiting: Waiting) -> None:
        self._write(wait_key(waiting.job_id, waiting.name), waiting.encode())

    def done_waiting(self, job_id: str, name: str) -> None:
        key = wait_key(job_id, name)
        if key in self._waits:
            self._write(key, b"")

    @contextlib.contextmanager
    def locked(self, job_id: str, name: str) -> Iterator[None]:
        """Hold the lock of a job's wait, in every process."""
        with key_lock(self.app.connection, steps_topic(self.app.settings), LOCK_SCOPE,
                      f"{job_id}/{name}"):  # fmt: skip
            yield

    def _resume(self, wait: Waiting, signal: Signal) -> bool:
        """End the wait with the signal and send the job a copy of itself, due now, unless the
        wait is over already; the waiting job is forgotten either way."""
        store = self.app.step_store
        with self.locked(wait.job_id, wait.name):
            over = wait.name in store.read(wait.job_id)
            if not over:
                outcome = encode_step(by_signal(signal.payload), self.app.clock(), kind="wait")
                store.write(wait.job_id, wait.name, outcome).result()
                parked = decode(wait.job)
                lineage = json.dumps([*lineage_of(parked), f"{wait.name}@{uuid.uuid4().hex[:12]}"])
                copy = parked.replace(run_at=None, meta={**parked.meta, COPY_META: lineage})
                self.app.publish_envelope(copy).result()
            self.done_waiting(wait.job_id, wait.name)
        return not over

    # -- the topic ---------------------------------------------------------------------------

    def _write(self, key: str, data: bytes) -> None:
        """Store a value of a key (b"": remove it) and see it at once."""
        connection = self.app.connection
        connection.keep_marks(self.topic)
        connection.publish(self.topic, data, key=key).result()
        with self._reading:
            self._apply(key, data)

    def _catch_up(self) -> None:
        """Read to the end of the topic: what was stored before this call is read."""
        connection = self.app.connection
        with self._reading, client_errors(connection.settings.service_url,
                                          f"reading {self.topic}"):  # fmt: skip
            if self._reader is None:
                connection.keep_marks(self.topic)
                self._reader = connection.client.create_reader(
                    self.topic, pulsar.MessageId.earliest, is_read_compacted=True
                )
            while self._reader.has_message_available():
                message = self._reader.read_next(timeout_millis=marks.READ_TIMEOUT_MS)
                self._apply(message.partition_key(), message.data())

    def _apply(self, key: str, data: bytes) -> None:
        kind, _, rest = key.partition("/")
        held: dict[str, Any] = self._signals if kind == "signal" else self._waits
        name = rest if kind == "signal" else key
        if not data:
            held.pop(name, None)
            return
        read: Callable[[bytes], Any] = Signal.decode if kind == "signal" else Waiting.decode
        try:
            held[name] = read(data)
        except ValueError:
            log.warning("not a signal or a wait; skipped", topic=self.topic, key=key)

    def close(self) -> None:
        with self._reading:
            if self._reader is not None:
                with contextlib.suppress(Exception):
                    self._reader.close()
                self._reader = None


def lineage_of(envelope: Envelope) -> list[str]:
    """Which copy of its job an envelope is: the waits whose signals made it and its forebears,
    each `<wait>@<token>`, oldest first; [] for the job as enqueued (and its retries, sleeps)."""
    copy = envelope.meta.get(COPY_META)
    return [] if copy is None else list(json.loads(copy))


def goes_on(claimed_by: list[str], copy: list[str], wait: str) -> bool:
    """Whether a copy of the job goes on past `wait`, which the copy `claimed_by` claimed: the
    claimant does, and so do the copies made since on its line for later waits; a copy made
    for `wait` itself lost it, and any other copy is stale."""
    if copy == claimed_by:
        return True
    if copy[: len(claimed_by)] != claimed_by or len(copy) == len(claimed_by):
        return False
    made_for = copy[len(claimed_by)].rsplit("@", 1)[0]
    return made_for != wait
