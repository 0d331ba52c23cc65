"""Job arguments (and job results) as the Avro ``Value`` record of ``schemas/job_envelope.avsc``:
what a value may be, and its conversion both ways with errors that name the offending path."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeAlias

from pulsarjobs.errors import ArgumentError

JobArg: TypeAlias = bool | int | float | str | bytes | list["JobArg"] | dict[str, "JobArg"] | None
"""A job argument. Tuples are accepted on encode and come back as lists."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_SCALARS = (str, bool, float, bytes)  # tested before int, which a bool also is
_HINTS = {  # datetime before date: a datetime is a date too
    datetime: "use an ISO string or a number",
    date: "use an ISO string",
    Decimal: "use a string",
    uuid.UUID: "use a string",
    set: "use a list",
    frozenset: "use a list",
}


class Unencodable(Exception):
    """An argument fastavro cannot take; the path is collected while the recursion unwinds."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reversed_path: list[str] = []

    def to_argument_error(self, root: str) -> ArgumentError:
        path = "".join(reversed(self.reversed_path))
        return ArgumentError(f"{root}{path}: {self.reason}")


def unwritable(exc: UnicodeEncodeError | RecursionError) -> Unencodable:
    """What the Avro writer could not take, said as an argument's error: a text UTF-8 cannot
    carry (a lone surrogate, as `errors="surrogateescape"` leaves in a decoded file name), or
    a list or dict that holds itself (found only by the recursion's limit)."""
    if isinstance(exc, RecursionError):
        return Unencodable("a list or dict holds itself, or nests too deeply")
    text = exc.object[exc.start : exc.end]
    return Unencodable(f"a text holds {text!r}, which UTF-8 cannot encode (a lone surrogate)")


def to_value(arg: object) -> dict[str, object]:
    """Wrap ``arg`` in the ``Value`` record, recursively."""
    if arg is None or isinstance(arg, _SCALARS):
        return {"v": arg}
    if isinstance(arg, int):
        if _INT64_MIN <= arg <= _INT64_MAX:
            return {"v": arg}
        raise Unencodable(f"int {arg} does not fit in a signed 64-bit integer")
    if isinstance(arg, list | tuple):
        return {"v": to_value_list(arg)}
    if isinstance(arg, Mapping):
        return {"v": to_value_map(arg)}
    raise Unencodable(_not_an_argument(arg))


def to_value_list(items: Sequence[object]) -> list[dict[str, object]]:
    values: list[dict[str, object]] = []
    for index, item in enumerate(items):
        try:
            values.append(to_value(item))
        except Unencodable as exc:
            exc.reversed_path.append(f"[{index}]")
            raise
    return values


def to_value_map(items: Mapping[Any, object]) -> dict[str, dict[str, object]]:
    values: dict[str, dict[str, object]] = {}
    for key, item in items.items():
        if not isinstance(key, str):
            raise Unencodable(f"key {key!r} is a {type(key).__name__}; keys must be str")
        try:
            values[key] = to_value(item)
        except Unencodable as exc:
            exc.reversed_path.append(f"[{key!r}]")
            raise
    return values


def _not_an_argument(arg: object) -> str:
    hint = next(
        (hint for cls, hint in _HINTS.items() if isinstance(arg, cls)),
        "use None, bool, int, float, str, bytes, a list or a dict with str keys",
    )
    return f"{type(arg).__name__} is not a job argument; {hint}"


def from_value(value: Any) -> JobArg:
    """Unwrap a decoded ``Value`` record, recursively."""
    inner: JobArg = value["v"]
    if isinstance(inner, list):
        return [from_value(item) for item in inner]
    if isinstance(inner, dict):
        return {key: from_value(item) for key, item in inner.items()}
    return inner
