"""What time it is: the one clock jobs are created, due, failed and expired by.

Anything that reads the time takes a `Clock`, so that the in-memory TestRunner can swap in its
virtual one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def when_due(now: datetime, in_: timedelta | None, at: datetime | None) -> datetime | None:
    """When a job enqueued `now` with `in_` or `at` is due; None: at once."""
    if in_ is not None and at is not None:
        raise ValueError("give either in_ or at, not both")
    if in_ is not None and not isinstance(in_, timedelta):
        raise ValueError(f"in_={in_!r}: give a timedelta, e.g. timedelta(minutes=30)")
    if at is not None and not isinstance(at, datetime):
        raise ValueError(f"at={at!r}: give an aware datetime, e.g. datetime.now(UTC)")
    if at is not None:
        if at.utcoffset() is None:
            raise ValueError(f"at={at!r} is naive; pass an aware datetime, e.g. with tzinfo=UTC")
        return at if at > now else None
    if in_ is not None:
        if in_ < timedelta(0):
            raise ValueError(f"in_={in_} is negative")
        return now + in_ if in_ > timedelta(0) else None
    return None


def require_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(
            f"{name} is a naive datetime ({value!r}); pass an aware one, e.g. datetime.now(UTC)"
        )
