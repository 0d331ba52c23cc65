"""The job envelope, the message a job topic carries, and its Avro codec.

A message is the schemaless Avro binary of ``schemas/job_envelope.avsc`` (Pulsar's AVRO
payload format: no container header). See ``docs/protocol.md`` for the wire protocol.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final, TypeVar, dataclass_transform

import fastavro

from pulsarjobs.clock import require_aware, utc_now
from pulsarjobs.errors import ArgumentError as ArgumentError  # re-exported: its old home
from pulsarjobs.errors import EnvelopeError as EnvelopeError
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.wire.job_error import JobError as JobError  # re-exported: its old home
from pulsarjobs.wire.values import JobArg as JobArg
from pulsarjobs.wire.values import (
    Unencodable,
    from_value,
    to_value_list,
    to_value_map,
    unwritable,
)

_SCHEMA_FILE = "job_envelope.avsc"
_DEFAULT_RETRY = RetryPolicy()
EARLIER_ERRORS_KEPT = 20  # errors of runs before the last an envelope carries, the oldest dropped
_REASON_LIMIT = 200  # fastavro's schema mismatch errors print both schemas whole


def new_id() -> str:
    """A fresh job id: a random UUID as 32 hex digits."""
    return uuid.uuid4().hex


_Class = TypeVar("_Class")


@dataclass_transform(frozen_default=True)
def immutable(cls: type[_Class]) -> type[_Class]:
    """A slotted dataclass that type checkers hold immutable, frozen only to them: a frozen
    dataclass's __init__ sets each field through object.__setattr__, which made decoding an
    envelope 2.5 µs slower. For the records made per job (Envelope, Delivery, Outcome)."""
    return dataclass(slots=True)(cls)


@immutable
class Envelope:
    """One delivery of a job: what to run, with which arguments, when, and how to retry it.

    Datetimes must be timezone-aware; decoded ones are UTC, to the millisecond.
    """

    id: str
    type: str
    queue: str
    args: tuple[JobArg, ...] = ()
    kwargs: Mapping[str, JobArg] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utc_now)
    run_at: datetime | None = None  # None: as soon as possible
    attempt: int = 1  # 1-based number of this run
    retry: RetryPolicy = _DEFAULT_RETRY
    timeout: float | None = None  # seconds a run may take; None: no limit
    expires_at: datetime | None = None  # not started after this instant; None: never
    meta: Mapping[str, str] = field(default_factory=dict)  # trace context etc.
    last_error: JobError | None = None  # of the previous run
    unique_key: str | None = None  # held while the job waits, retries or runs (unique.py)
    order_key: str | None = None  # jobs of one key run one at a time, in order (_ordering.py)
    limit_key: str | None = None  # takes one of this key's slots while it runs (limits.py)
    snoozes: int = 0  # times it put itself off (snooze.py); the attempt stays
    batch_id: str | None = None  # reported to this batch when it settles (batches.py)
    keep_result: float | None = None  # seconds its result is kept once settled (results.py)
    chain: Chain | None = None  # its place in a chain and the links after it (chains.py)
    debounce_key: str | None = None  # calls of this key collapse into one run (debounce.py)
    fair_key: str | None = None  # takes turns with other keys' jobs of its queue (fairness.py)
    fair_weight: int = 1  # jobs its lane starts in one turn while it heads the lane
    # Why the runs before the previous one failed, the oldest first, without their tracebacks.
    earlier_errors: tuple[JobError, ...] = ()

    def __post_init__(self) -> None:
        if self.created_at.utcoffset() is None:  # the call only then: decoded per job
            require_aware("created_at", self.created_at)
        if self.run_at is not None:  # most jobs have neither: no call for them (decoded per job)
            require_aware("run_at", self.run_at)
        if self.expires_at is not None:
            require_aware("expires_at", self.expires_at)
        if self.attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {self.attempt!r}")
        if not isinstance(self.args, tuple):  # a list would make equal envelopes compare unequal
            object.__setattr__(self, "args", tuple(self.args))

    def replace(self, **changes: Any) -> Envelope:
        """A copy with ``changes`` applied, e.g. ``env.replace(attempt=env.attempt + 1)``."""
        return dataclasses.replace(self, **changes)

    def failed_with(self, error: JobError) -> Envelope:
        """A copy whose last error is `error`; the one it replaces joins the earlier errors,
        without its traceback (EARLIER_ERRORS_KEPT at most)."""
        earlier = self.earlier_errors
        if self.last_error is not None:
            latest = dataclasses.replace(self.last_error, traceback="")
            earlier = (*earlier, latest)[-EARLIER_ERRORS_KEPT:]
        return dataclasses.replace(self, last_error=error, earlier_errors=earlier)


@dataclass(frozen=True, slots=True)
class Chain:
    """A job's place in a chain, and the links after it (each with no chain of its own)."""

    id: str
    link: int  # 1-based number of this job in the chain
    links: int  # how many in all
    pass_result: bool  # each next link receives the previous one's return value first
    next: tuple[Envelope, ...] = ()
    previous: str | None = None  # the job id of the link before, which published this one

    @property
    def where(self) -> str:
        return f"chain link {self.link} of {self.links}"


# --- schema -----------------------------------------------------------------------------


def schema_text(file: str = _SCHEMA_FILE) -> str:
    """One of the schemas in `schemas/`, as JSON text."""
    # Wheels ship the schema inside the package; editable installs read the source tree.
    packaged = resources.files("pulsarjobs") / "_schemas" / file
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    source = Path(__file__).resolve().parents[2] / "schemas" / file
    return source.read_text(encoding="utf-8")


SCHEMA_DEFINITION: Final[dict[str, Any]] = json.loads(schema_text())
_PARSED_SCHEMA: Final = fastavro.parse_schema(SCHEMA_DEFINITION)

SCHEMA_JSON: Final = json.dumps(SCHEMA_DEFINITION, separators=(",", ":"), ensure_ascii=False)
"""The envelope's Avro schema as compact JSON, docs and defaults included."""

_NO_EXTRAS: Final[dict[str, Any]] = next(
    {extra["name"]: extra["default"] for extra in field["type"][1]["fields"]}
    for field in SCHEMA_DEFINITION["fields"]
    if field["name"] == "extras"
)
"""The `extras` of a plain job, which is sent as null instead."""


@functools.lru_cache(maxsize=64)
def _writer_schema(text: str) -> Any:
    """The parsed writer schema, or None when it is ours."""
    try:
        definition = json.loads(text)
        return None if definition == SCHEMA_DEFINITION else fastavro.parse_schema(definition)
    except Exception as exc:
        raise EnvelopeError(f"writer schema is not a valid Avro schema: {_brief(exc)}") from exc


def _as_ours(record: dict[str, Any]) -> dict[str, Any]:
    """A record another version of the schema wrote, in ours: the fields it lacks take our
    defaults; ours lack none it needs, as fields are only ever added, with defaults, or moved
    into `extras` (before `extras`, they sat at the top level). Not fastavro's resolution: it
    reads a bytes argument as a string, the first branch of `Value.v` that bytes promote to."""
    if "extras" in record:
        extras = record["extras"]
    else:
        extras = {name: record[name] for name in _NO_EXTRAS if name in record}
    if extras is not None:
        extras = {**_NO_EXTRAS, **extras}
        if (chain := extras["chain"]) is not None:
            chain["next"] = [_as_ours(link) for link in chain["next"]]
    return {**record, "meta": record.get("meta", {}), "extras": extras}


def _brief(exc: Exception) -> str:
    reason = str(exc)
    if len(reason) > _REASON_LIMIT:
        reason = reason[:_REASON_LIMIT] + "..."
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


# --- envelope <-> Avro record -----------------------------------------------------------


def _millis(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _to_record(env: Envelope) -> dict[str, object]:
    try:
        args = to_value_list(env.args)
    except Unencodable as exc:
        raise exc.to_argument_error("args") from None
    try:
        kwargs = to_value_map(env.kwargs)
    except Unencodable as exc:
        raise exc.to_argument_error("kwargs") from None
    retry = env.retry
    error = env.last_error
    extras = {
        "run_at": env.run_at,
        "timeout_ms": _millis(env.timeout),
        "expires_at": env.expires_at,
        "last_error": None if error is None else dataclasses.asdict(error),  # same fields
        "unique_key": env.unique_key,
        "order_key": env.order_key,
        "limit_key": env.limit_key,
        "snoozes": env.snoozes,
        "batch_id": env.batch_id,
        "keep_result_ms": _millis(env.keep_result),
        "chain": None if env.chain is None else _chain_record(env.chain),
        "debounce_key": env.debounce_key,
        "fair_key": env.fair_key,
        "fair_weight": None if env.fair_weight == 1 else env.fair_weight,
        "earlier_errors": [dataclasses.asdict(e) for e in env.earlier_errors] or None,
    }
    return {
        "id": env.id,
        "type": env.type,
        "queue": env.queue,
        "args": args,
        "kwargs": kwargs,
        "created_at": env.created_at,
        "attempt": env.attempt,
        "retry": {
            "max_attempts": retry.max_attempts,
            "initial_delay_ms": _millis(retry.initial_delay),
            "max_delay_ms": _millis(retry.max_delay),
            "multiplier": retry.multiplier,
            "jitter": retry.jitter,
        },
        "meta": env.meta,
        "extras": None if extras == _NO_EXTRAS else extras,
    }


def _chain_record(chain: Chain) -> dict[str, object]:
    return {
        "id": chain.id,
        "link": chain.link,
        "links": chain.links,
        "pass_result": chain.pass_result,
        "next": [_to_record(link) for link in chain.next],
        "previous": chain.previous,
    }


@functools.lru_cache(maxsize=256)
def _retry_policy(
    max_attempts: int, initial_delay_ms: int, max_delay_ms: int, multiplier: float, jitter: float
) -> RetryPolicy:
    """One immutable policy per distinct setting: most jobs of an app share a handful."""
    return RetryPolicy(
        max_attempts=max_attempts,
        initial_delay=initial_delay_ms / 1000,
        max_delay=max_delay_ms / 1000,
        multiplier=multiplier,
        jitter=jitter,
    )


def _from_record(record: dict[str, Any]) -> Envelope:
    retry, kwargs, extras = record["retry"], record["kwargs"], record["extras"]
    return Envelope(
        id=record["id"],
        type=record["type"],
        queue=record["queue"],
        args=tuple(map(from_value, record["args"])),
        kwargs={key: from_value(value) for key, value in kwargs.items()} if kwargs else {},
        created_at=record["created_at"],
        attempt=record["attempt"],
        retry=_retry_policy(
            retry["max_attempts"],
            retry["initial_delay_ms"],
            retry["max_delay_ms"],
            retry["multiplier"],
            retry["jitter"],
        ),
        meta=record["meta"],
        **({} if extras is None else _from_extras(extras)),
    )


def _from_extras(extras: dict[str, Any]) -> dict[str, Any]:
    """The Envelope fields `extras` holds."""
    error = extras["last_error"]
    return {
        "run_at": extras["run_at"],
        "timeout": None if (timeout := extras["timeout_ms"]) is None else timeout / 1000,
        "expires_at": extras["expires_at"],
        "last_error": None if error is None else JobError(**error),
        "unique_key": extras["unique_key"],
        "order_key": extras["order_key"],
        "limit_key": extras["limit_key"],
        "snoozes": extras["snoozes"],
        "batch_id": extras["batch_id"],
        "keep_result": None if (keep := extras["keep_result_ms"]) is None else keep / 1000,
        "chain": None if (chain := extras["chain"]) is None else _chain(chain),
        "debounce_key": extras["debounce_key"],
        "fair_key": extras["fair_key"],
        "fair_weight": extras["fair_weight"] or 1,
        "earlier_errors": tuple(JobError(**e) for e in extras["earlier_errors"] or ()),
    }


def _chain(record: dict[str, Any]) -> Chain:
    links = tuple([_from_record(link) for link in record["next"]])
    previous = record.get("previous")  # absent from what older writers wrote
    return Chain(
        record["id"], record["link"], record["links"], record["pass_result"], links, previous
    )


# --- codec ------------------------------------------------------------------------------


def encode(env: Envelope) -> bytes:
    """Schemaless Avro binary of ``env``; raises ArgumentError for unencodable arguments."""
    stream = io.BytesIO()
    try:
        fastavro.schemaless_writer(stream, _PARSED_SCHEMA, _to_record(env))
    except (UnicodeEncodeError, RecursionError) as exc:  # in any field: name the job
        raise unwritable(exc).to_argument_error(f"job {env.type!r}") from None
    return stream.getvalue()


def decode(data: bytes, writer_schema: str | None = None) -> Envelope:
    """The envelope in ``data``, written with ``writer_schema`` (JSON) when that is not ours.

    Raises EnvelopeError, and nothing else, when ``data`` is not such an envelope.
    """
    writer = None if writer_schema is None else _writer_schema(writer_schema)
    stream = io.BytesIO(data)
    try:
        if writer is None:
            record = fastavro.schemaless_reader(stream, _PARSED_SCHEMA, None)
        else:
            record = _as_ours(fastavro.schemaless_reader(stream, writer, None))  # type: ignore[arg-type]
        envelope = _from_record(record)  # type: ignore[arg-type]  # a dict, as the schema says
    except Exception as exc:
        raise EnvelopeError(f"not a job envelope: {_brief(exc)}") from exc
    # A datum of another schema can happen to parse; it rarely ends exactly at the end.
    left_over = len(data) - stream.tell()
    if left_over:
        raise EnvelopeError(f"not a job envelope: {left_over} bytes left after the envelope")
    return envelope
