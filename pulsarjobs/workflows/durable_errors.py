"""What a durable job's run raises (workflows/durable.py): to end the run for now — parked until a
time, or superseded by another copy of the job — or to tell the job's code that a wait timed out
or a child job failed."""

from __future__ import annotations

from datetime import datetime


class Parked(Exception):
    """Raised by `Durable.sleep`: the run ends here, and the job runs again at `until` (the
    PARKED verdict). Do not catch it: as with Snooze, the worker must see it."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"parked until {until.isoformat()}")
        self.until = until


class WaitTimedOut(TimeoutError):
    """Raised by `Durable.wait_for` when no signal came before its timeout."""

    def __init__(self, key: str, deadline: datetime) -> None:
        super().__init__(f"no signal {key!r} came by {deadline.isoformat()}")
        self.key = key
        self.deadline = deadline


class Superseded(Exception):
    """Raised by `Durable.wait_for` in a copy of the job that another copy has carried on past
    a signalled wait (signals.py): this one ends there (the SUPERSEDED verdict)."""


class ChildFailed(Exception):
    """Raised by `Durable.child` and `Durable.gather` for a child job that is over and did not
    succeed (dead, cancelled, expired): its error's type and message."""

    def __init__(self, job_id: str, error: dict[str, str]) -> None:
        super().__init__(f"child job {job_id} failed: {error['type']}: {error['message']}")
        self.job_id = job_id
        self.error_type = error["type"]
        self.error_message = error["message"]
