"""Durations and instants as people type them: `30s`, `5m`, `2h`, `1d`, `1h30m`, ISO times."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """`30s`, `5m`, `2h`, `1d`, `1w`, or several at once: `1h30m`."""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(f"{text!r} is not a duration; write e.g. 30s, 5m, 2h, 1d or 1h30m")
    return timedelta(seconds=sum(float(number) * _UNITS[unit] for number, unit in parts))


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
