"""Periodic jobs: cron lines, their ticks in a time zone, and which ticks are due.

Pure and broker-free: the current time is always an argument, so the scheduler and the tests
own the clock. Every instant taken or returned is an aware datetime; returned ones are in UTC.

Ticks follow the wall clock of the schedule's zone. Where that clock jumps, a line reads the
way cronie (Vixie cron) reads it:

- a line whose minute or hour field starts with ``*`` (``* * * * *``, ``*/15 * * * *``,
  ``0 * * * *``) fires whenever the clock shows a matching time: the times spring-forward skips
  are never shown, so they do not fire; the hour fall-back repeats is shown twice, so it fires
  twice, each time a real hour apart;
- any other line names times of day (``30 2 * * *``, ``0 9 * * MON``) and fires once for each:
  at its first occurrence when fall-back repeats it, at the first instant after the gap when
  spring-forward skips it.

croniter does the calendar on naive wall times only; mapping wall times to instants is done
here, because croniter's own handling differs: it fires ``30 2 * * *`` twice on fall-back, and
``0 */2 * * *`` at the end of spring-forward's gap.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.jobs import JobCall
from pulsarjobs.wire.envelope import JobArg

MissedPolicy = Literal["skip", "once", "all"]
"""What to do with ticks that passed while no scheduler ran: none, the latest, or all of them."""

MISSED_POLICIES: tuple[MissedPolicy, ...] = get_args(MissedPolicy)
# A schedule's defaults, here only: App.periodic and App.schedule take them from here.
DEFAULT_TZ = "UTC"
DEFAULT_MISSED: MissedPolicy = "skip"
DEFAULT_MAX_CATCH_UP = 1000  # the most ticks "all" enqueues after downtime
DEFAULT_GRACE = timedelta(minutes=1)  # a tick reached this late is late, not missed
SCHEDULE_META = "pulsarjobs-schedule"
TICK_META = "pulsarjobs-tick"

_TICK_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_FIELDS = (  # name, range, what a field may hold
    ("minute", (0, 59), "minutes run 0-59"),
    ("hour", (0, 23), "hours run 0-23"),
    ("day of month", (1, 31), "days of the month run 1-31, or L for the last"),
    ("month", (1, 12), "months run 1-12 or JAN-DEC"),
    ("day of week", (0, 7), "days of the week run 0-7 (0 and 7 are Sunday) or SUN-SAT"),
    ("second", (0, 59), "seconds run 0-59"),
)
_NUMBER = re.compile(r"\d+")
_CRONITER_PREAMBLE = re.compile(r"^\[[^\]]*\] (is not acceptable[.,] )?")  # "[0 0 31 2 *] ..."
# Offsets are probed this far apart, which sees every change: the shortest span of one offset
# in the tz database is four days (Africa/Freetown, 1939).
_PROBE = timedelta(days=1)
_JUST_BEFORE = timedelta(microseconds=1)
_ANY_START = datetime(2000, 1, 1)  # croniter would read the real clock without one


@dataclass(frozen=True, slots=True)
class Schedule:
    """A job enqueued at every tick of a cron line, in a time zone."""

    name: str  # unique per app; also names the ticks' job ids
    cron: str  # 5 fields, or 6 with seconds last ("* * * * * */5"), in croniter's syntax
    tz: ZoneInfo
    job: str  # the job type to enqueue
    queue: str | None = None  # None: the job's declared queue
    args: tuple[JobArg, ...] = ()
    kwargs: Mapping[str, JobArg] = field(default_factory=dict)
    missed: MissedPolicy = DEFAULT_MISSED
    max_catch_up: int = DEFAULT_MAX_CATCH_UP
    grace: timedelta = DEFAULT_GRACE

    def __post_init__(self) -> None:
        _check_cron_line(self.cron, self.name)
        if self.missed not in MISSED_POLICIES:
            raise ConfigurationError(
                f"missed={self.missed!r} for {self.name}: use one of {', '.join(MISSED_POLICIES)}"
            )
        if not isinstance(self.max_catch_up, int) or self.max_catch_up < 1:
            raise ConfigurationError(f"max_catch_up for {self.name} must be a whole number >= 1")
        if not isinstance(self.grace, timedelta):
            raise ConfigurationError(
                f"grace={self.grace!r} for {self.name}: give a timedelta, e.g. timedelta(minutes=5)"
            )
        if self.grace < timedelta(0):
            raise ConfigurationError(f"grace for {self.name} must not be negative")

    def next_tick(self, after: datetime) -> datetime:
        """The first tick strictly after `after`, in UTC.

        Walks the spans of constant UTC offset: within one, a wall time maps to exactly one
        instant; where a span ends before the next matching wall time, the search goes on in the
        next span from its first instant."""
        start = _as_utc("after", after)
        offset = _offset(self.tz, start)
        wall_from = _wall(start, offset)
        while True:
            wall = self._next_wall(wall_from)
            instant = _instant(wall, offset)
            change = _first_offset_change(self.tz, start, instant)
            if change is None:
                if self._keeps_rhythm or instant == _first_instant(wall, self.tz):
                    return instant
                start, wall_from = instant, wall  # fall-back's repeat of a time of day
                continue
            offset = _offset(self.tz, change)
            if not self._keeps_rhythm and wall < _wall(change, offset):
                return change  # a time of day in spring-forward's gap
            start, wall_from = change, _wall(change, offset) - _JUST_BEFORE

    def ticks(self, after: datetime, until: datetime) -> list[datetime]:
        """Every tick in (after, until], in UTC."""
        end = _as_utc("until", until)
        found: list[datetime] = []
        tick = self.next_tick(after)
        while tick <= end:
            found.append(tick)
            tick = self.next_tick(tick)
        return found

    def due(self, last_tick: datetime | None, now: datetime) -> list[datetime]:
        """The ticks to enqueue now, oldest first, given the last tick enqueued.

        The latest tick in (last_tick, now] is late, not missed, if it passed at most `grace`
        ago: it is due whatever the policy, so a scheduler that wakes a little late or fails
        over to another process drops nothing. Older ticks are missed and follow `missed`. With
        no tick ever enqueued (`last_tick` None) nothing is due: the first is `next_tick(now)`.
        """
        if last_tick is None:
            return []
        if self.missed == "all":
            return self._latest_ticks(last_tick, now, self.max_catch_up)
        latest = self._latest_ticks(last_tick, now, 1)
        if self.missed == "once":
            return latest
        return [tick for tick in latest if _as_utc("now", now) - tick <= self.grace]

    def job_id(self, tick: datetime) -> str:
        """The same id for the same (schedule, tick), so a tick enqueued twice is one job."""
        return f"cron:{self.name}:{_tick_text(tick)}"

    def call(self, tick: datetime) -> JobCall:
        """The job to enqueue for `tick`: its id and meta name the schedule and the tick."""
        return JobCall(
            self.job,
            args=self.args,
            kwargs=self.kwargs,
            queue=self.queue,
            job_id=self.job_id(tick),
            meta={SCHEDULE_META: self.name, TICK_META: _tick_text(tick)},
        )

    @property
    def _keeps_rhythm(self) -> bool:
        minute, hour = self.cron.split()[:2]
        return minute.startswith("*") or hour.startswith("*")

    def _next_wall(self, after: datetime) -> datetime:
        """The first matching wall time strictly after the naive wall time `after`."""
        matcher = copy.copy(_parsed(self.cron))  # a croniter keeps its position in itself
        wall: datetime = matcher.get_next(datetime, start_time=after)
        return wall

    def _latest_ticks(self, after: datetime, until: datetime, count: int) -> list[datetime]:
        """The last `count` ticks in (after, until]. Looks back over a doubling window rather
        than walking from `after`, so a long outage costs about `count` ticks, not all missed."""
        after, until = _as_utc("last_tick", after), _as_utc("now", until)
        window = timedelta(seconds=1)
        while True:
            start = max(after, until - window)
            found = self.ticks(start, until)
            if len(found) >= count or start == after:
                return found[-count:]
            window = min(window * 2, until - after)


def parse_schedule(
    name: str,
    cron: str,
    *,
    job: str,
    tz: str | ZoneInfo = DEFAULT_TZ,
    queue: str | None = None,
    args: tuple[JobArg, ...] = (),
    kwargs: Mapping[str, JobArg] | None = None,
    missed: MissedPolicy = DEFAULT_MISSED,
    max_catch_up: int = DEFAULT_MAX_CATCH_UP,
    grace: timedelta = DEFAULT_GRACE,
) -> Schedule:
    """A checked Schedule; a bad line, zone or policy raises ConfigurationError naming it."""
    return Schedule(
        name=name,
        cron=cron,
        tz=tz if isinstance(tz, ZoneInfo) else _zone(tz, name),
        job=job,
        queue=queue,
        args=tuple(args),
        kwargs=dict(kwargs or {}),
        missed=missed,
        max_catch_up=max_catch_up,
        grace=grace,
    )


def _zone(key: str, schedule: str) -> ZoneInfo:
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"time zone {key!r} for {schedule} is unknown: use an IANA name such as "
            "'Europe/Berlin' or 'UTC' (where the system has no time zone database, install "
            "the tzdata package)"
        ) from None


def _check_cron_line(line: str, schedule: str) -> None:
    fields = line.split()
    if len(fields) not in (5, 6):
        raise ConfigurationError(
            f"cron line {line!r} for {schedule}: expected 5 fields (minute hour day-of-month "
            f"month day-of-week) or 6 (the same and second), got {len(fields)}"
        )
    try:
        croniter.expand(line, strict=True)  # strict: also rejects dates that never occur
    except CroniterError as exc:
        problem = _field_problem(fields) or _CRONITER_PREAMBLE.sub("", str(exc))
        raise ConfigurationError(f"cron line {line!r} for {schedule}: {problem}") from None


def _field_problem(fields: list[str]) -> str | None:
    """What is wrong with the first field that is wrong on its own (croniter does not say)."""
    for index, text in enumerate(fields):
        alone = ["*"] * len(fields)
        alone[index] = text
        if croniter.is_valid(" ".join(alone)):
            continue
        name, (low, high), allowed = _FIELDS[index]
        for number in map(int, _NUMBER.findall(text)):
            if not low <= number <= high:
                return f"{name} {number} is out of range {low}-{high}"
        return f"{name} {text!r} is not valid: {allowed}"
    return None


@functools.lru_cache(maxsize=1024)
def _parsed(line: str) -> croniter:
    """Parsing is most of croniter's cost; a copy of the parsed line is cheap."""
    return croniter(line, _ANY_START)


def _as_utc(name: str, moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"{name}={moment!r} is naive; pass an aware datetime, e.g. in UTC")
    return moment.astimezone(UTC)


def _tick_text(tick: datetime) -> str:
    return _as_utc("tick", tick).strftime(_TICK_FORMAT)


def _offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    return instant.astimezone(tz).utcoffset() or timedelta(0)


def _wall(instant: datetime, offset: timedelta) -> datetime:
    return (instant + offset).replace(tzinfo=None)


def _instant(wall: datetime, offset: timedelta) -> datetime:
    return (wall - offset).replace(tzinfo=UTC)


def _first_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The earlier instant of a wall time that fall-back repeats (fold 0); the only one else."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _first_offset_change(tz: ZoneInfo, start: datetime, end: datetime) -> datetime | None:
    """The first instant in (start, end] whose UTC offset differs from start's, if any."""
    offset = _offset(tz, start)
    low = start
    while low < end:
        high = min(low + _PROBE, end)
        if _offset(tz, high) != offset:
            return _offset_change_within(tz, low, high, offset)
        low = high
    return None


def _offset_change_within(
    tz: ZoneInfo, low: datetime, high: datetime, offset: timedelta
) -> datetime:
    """Bisects (low, high] for the change away from `offset`; zones change on whole seconds."""
    before, after = math.floor(low.timestamp()), math.ceil(high.timestamp())
    while after - before > 1:
        middle = (before + after) // 2
        if _offset(tz, datetime.fromtimestamp(middle, UTC)) == offset:
            before = middle
        else:
            after = middle
    return datetime.fromtimestamp(after, UTC)
