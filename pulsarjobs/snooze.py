"""Snooze: a job puts itself off, without spending an attempt.

A run that raises `Snooze(delay)` is settled as "snoozed": published again to the subscription's
retry topic, due at its time (never run early, as any scheduled job), with the same attempt and
its envelope's `snoozes` + 1. A snooze is no failure: no `on_failure` hook, not counted as
failed, its `last_error` unchanged. Each job type allows `max_snoozes` of them; the run that would
snooze once more is dead-lettered instead, so that a job snoozing by mistake does not circle on
the retry topic for ever.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from pulsarjobs.wire.envelope import Envelope

# A job polling every minute for an hour and a half, or every hour for four days: generous for
# waiting on something outside, small enough that a job snoozing by mistake ends up in sight.
DEFAULT_MAX_SNOOZES = 100


class Snooze(Exception):
    """Raise in a job to run it again later: after `delay` (a timedelta, or seconds), or at a
    datetime (timezone-aware). The attempt stays; the job's `max_snoozes` bounds how often."""

    def __init__(self, delay: timedelta | float | datetime) -> None:
        if isinstance(delay, datetime):
            if delay.utcoffset() is None:
                raise ValueError(f"Snooze needs an aware datetime, got the naive {delay!r}")
        elif isinstance(delay, timedelta):
            if delay < timedelta(0):
                raise ValueError(f"Snooze needs a delay >= 0, got {delay}")
        elif isinstance(delay, bool) or not isinstance(delay, int | float):
            raise TypeError(
                f"Snooze takes a timedelta, seconds or a datetime, got {type(delay).__name__}"
            )
        elif not (math.isfinite(delay) and delay >= 0):
            raise ValueError(f"Snooze needs a finite number of seconds >= 0, got {delay!r}")
        super().__init__(f"snoozed until {delay}" if isinstance(delay, datetime) else
                         f"snoozed for {delay}")  # fmt: skip
        self.delay = delay

    def due(self, now: datetime) -> datetime:
        """When the snoozed job runs again (a datetime gone by means now), rounded up to the
        millisecond the envelope keeps: never before the time asked for."""
        if isinstance(self.delay, datetime):
            due = max(self.delay, now)
        else:
            due = now + (self.delay if isinstance(self.delay, timedelta) else
                         timedelta(seconds=self.delay))  # fmt: skip
        return due + timedelta(microseconds=-due.microsecond % 1000)

    def applied_to(self, envelope: Envelope, now: datetime) -> Envelope:
        """The job's next delivery: due later, the same attempt, one snooze more."""
        return envelope.replace(run_at=self.due(now), snoozes=envelope.snoozes + 1)
