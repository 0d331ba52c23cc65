"""Durations, sizes and instants as people type them: `30s`, `5m`, `2h`, `1d`, `1h30m`; `500M`,
`1G`; ISO times — and written back the same way."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
# Sizes count in powers of 1024, as pulsar-admin reads `10M` or `1G`.
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)(?:([kmgt])(?:i?b)?|b)?")


def parse_duration(text: str) -> timedelta:
    """`30s`, `5m`, `2h`, `1d`, `1w`, or several at once: `1h30m`."""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(f"{text!r} is not a duration; write e.g. 30s, 5m, 2h, 1d or 1h30m")
    return timedelta(seconds=sum(float(number) * _UNITS[unit] for number, unit in parts))


def format_duration(duration: timedelta) -> str:
    """A duration as `parse_duration` reads it: `30d`, `1h30m`, `45s`."""
    seconds, parts = round(duration.total_seconds()), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def parse_size(text: str) -> int:
    """Bytes: `512`, `64K`, `500M`, `1G`, `2T` (powers of 1024; `1GB` and `1GiB` read as `1G`)."""
    found = _SIZE.fullmatch(text.strip().lower().replace(" ", ""))
    size = round(float(found[1]) * _SIZE_UNITS[found[2] or ""]) if found else 0
    if size < 1:
        raise ValueError(f"{text!r} is not a size; write e.g. 64K, 500M, 1G or 2T")
    return size


def format_size(size: int) -> str:
    """Bytes in the largest unit that keeps it readable: `1 GiB`, `1.5 GiB`, `500 MiB`."""
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} B"


def parse_instant(text: str) -> datetime:
    """An ISO 8601 time; one without an offset is taken in this machine's local time."""
    try:
        instant = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO time; write e.g. 2027-01-04T09:00 or 2027-01-04T09:00Z"
        ) from None
    return instant if instant.utcoffset() is not None else instant.astimezone()


def parse_since(text: str, now: datetime) -> datetime:
    """A cut-off: a duration back from `now` (`2h`) or an ISO time."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_instant(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (2h, 1d) nor an ISO time (2027-01-04T09:00Z)"
        ) from None
