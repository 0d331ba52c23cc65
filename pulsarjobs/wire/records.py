"""Small records as topics carry them — marks (cancels, pauses, unique holds), heartbeats,
worker commands, batch states: compact JSON with instants as ISO 8601 text. One codec for all of
them, and one way to refuse a message that is not the record (job results, in Avro, too)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")

# What reading the fields of a message that is not the record raises: no JSON, a field missing,
# or one of another kind.
NOT_A_RECORD: tuple[type[Exception], ...] = (
    TypeError,
    KeyError,
    AttributeError,
    json.JSONDecodeError,
)


def encode_record(fields: Mapping[str, Any]) -> bytes:
    """`fields` as compact JSON; an instant (datetime) as its ISO 8601 text."""
    return json.dumps(fields, separators=(",", ":"), default=_instant_text).encode()


def decode_record(
    data: bytes,
    what: str,
    read: Callable[[Any], T],
    *,
    parse: Callable[[bytes], Any] = json.loads,
    errors: tuple[type[Exception], ...] = NOT_A_RECORD,
) -> T:
    """What `read` makes of the fields `parse` finds in `data`; ValueError("not a <what>: ...")
    when `data` is not that record (`errors`: what says so)."""
    try:
        return read(parse(data))
    except errors as exc:
        raise ValueError(f"not a {what}: {exc}") from exc


def instant(text: str) -> datetime:
    """An instant a record holds (its ISO 8601 text)."""
    return datetime.fromisoformat(text)


def _instant_text(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"a record holds no {type(value).__name__}")
