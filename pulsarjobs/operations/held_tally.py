"""What a subscription holds of one topic, counted: due now, due later, or cancelled — and the
count kept between looks, so that a look recounts only what changed (ready_work.py).

Counting a million held jobs takes a good part of a second in Python, and the dashboard looks
every poll interval while a tab is open. A count stays right while nothing it counted changed:
no job was acknowledged since (the held arrays only grew), the cancelled jobs are the same, and
no job counted as due later has come due. Then a look counts only the jobs appended since;
otherwise it counts all again. So a deep backlog that only grows, or stands still, costs a look
what came since, and the counts stay exact.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tally:
    at: float  # epoch seconds: due means due at or before this
    counted: int  # the first `counted` held jobs are counted
    forgotten: int  # the held jobs' `forgotten` when counted: it grows as acknowledged ones go
    cancelled: frozenset[int]  # the hashes of cancelled job ids, when counted
    due: int  # not cancelled, due at `at`
    later: int  # not cancelled, due after `at`
    dropped: int  # cancelled (dropped by a worker when due)
    oldest_due: float | None  # the earliest due time of those due
    next_due: float  # the earliest due time of those due later: the count is stale from then

    def fresh(self, forgotten: int, cancelled: frozenset[int], now: float) -> bool:
        """Still right for what it counted."""
        return forgotten == self.forgotten and cancelled == self.cancelled and now < self.next_due


def tallied(
    dues: array[float],
    ids: array[int],
    forgotten: int,
    cancelled: frozenset[int],
    now: float,
    before: Tally | None,
) -> Tally:
    """The held jobs (their due times and id hashes, in the order of positions) counted: from
    `before` on when it is still right, else all at `now`."""
    if (
        before is not None
        and before.fresh(forgotten, cancelled, now)
        and before.counted <= len(dues)
    ):
        grown = _count(dues, ids, before)
        if now < grown.next_due:  # none of those appended was due between then and now
            return grown
    start = Tally(now, 0, forgotten, cancelled, 0, 0, 0, None, math.inf)
    return _count(dues, ids, start)


def _count(dues: array[float], ids: array[int], start: Tally) -> Tally:
    at, cancelled = start.at, start.cancelled
    due, later, dropped = start.due, start.later, start.dropped
    oldest, next_due = start.oldest_due, start.next_due
    for due_at, job in zip(dues[start.counted :], ids[start.counted :], strict=True):
        if job in cancelled:
            dropped += 1
        elif due_at <= at:
            due += 1
            if oldest is None or due_at < oldest:
                oldest = due_at
        else:
            later += 1
            next_due = min(next_due, due_at)
    return Tally(at, len(dues), start.forgotten, cancelled, due, later, dropped, oldest, next_due)
