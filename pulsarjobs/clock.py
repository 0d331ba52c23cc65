"""What time it is: the one clock jobs are created, due, failed and expired by.

Anything that reads the time takes a `Clock`, so that the in-memory TestRunner can swap in its
virtual one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
