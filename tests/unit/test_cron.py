"""Cron schedules: ticks across DST changes, missed-tick policies, ids, declaration checks.

2024's changes: Europe/Berlin springs forward on 31 March at 01:00 UTC (02:00 CET -> 03:00
CEST) and falls back on 27 October at 01:00 UTC (03:00 CEST -> 02:00 CET); America/New_York
springs forward on 10 March at 07:00 UTC (02:00 EST -> 03:00 EDT) and falls back on 3 November
at 06:00 UTC (02:00 EDT -> 01:00 EST).
"""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

import pulsarjobs
from pulsarjobs.app import App, JobCall
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.scheduling.cron import Schedule, parse_schedule
from pulsarjobs.settings import Settings

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
CHANGES = {  # zone -> (spring forward, fall back), in UTC
    BERLIN: (datetime(2024, 3, 31, 1, tzinfo=UTC), datetime(2024, 10, 27, 1, tzinfo=UTC)),
    NEW_YORK: (datetime(2024, 3, 10, 7, tzinfo=UTC), datetime(2024, 11, 3, 6, tzinfo=UTC)),
}


def at(text: str) -> datetime:
    """An aware instant from ISO text with its offset, e.g. '2024-03-31T03:00+02:00'."""
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() is not None
    return moment


def schedule(cron: str, tz: str = "UTC", **options: Any) -> Schedule:
    return parse_schedule("test", cron, job="test", tz=tz, **options)


def in_zone(ticks: list[datetime], tz: str) -> list[str]:
    """Ticks as ISO text on the zone's clock, offsets included: '2024-03-31T03:00+02:00'."""
    return [tick.astimezone(ZoneInfo(tz)).isoformat(timespec="minutes") for tick in ticks]


# --- time zones and DST ---------------------------------------------------------------------


def test_monday_9_00_in_berlin_is_9_00_berlin_time_across_both_changes() -> None:
    weekly = schedule("0 9 * * MON", BERLIN)
    spring = weekly.ticks(at("2024-03-20T00:00Z"), at("2024-04-02T00:00Z"))
    autumn = weekly.ticks(at("2024-10-15T00:00Z"), at("2024-10-29T00:00Z"))
    assert [tick.isoformat() for tick in spring] == [
        "2024-03-25T08:00:00+00:00",  # CET, UTC+1
        "2024-04-01T07:00:00+00:00",  # CEST, UTC+2
    ]
    assert [tick.isoformat() for tick in autumn] == [
        "2024-10-21T07:00:00+00:00",
        "2024-10-28T08:00:00+00:00",
    ]
    assert {tick.astimezone(ZoneInfo(BERLIN)).strftime("%a %H:%M") for tick in spring} == {
        "Mon 09:00"
    }


def test_monday_9_00_in_new_york_moves_in_utc_with_the_changes() -> None:
    weekly = schedule("0 9 * * MON", NEW_YORK)
    ticks = weekly.ticks(at("2024-03-01T00:00Z"), at("2024-03-12T00:00Z"))
    ticks += weekly.ticks(at("2024-10-27T00:00Z"), at("2024-11-05T00:00Z"))
    assert [tick.isoformat() for tick in ticks] == [
        "2024-03-04T14:00:00+00:00",  # EST, UTC-5
        "2024-03-11T13:00:00+00:00",  # EDT, UTC-4
        "2024-10-28T13:00:00+00:00",
        "2024-11-04T14:00:00+00:00",
    ]


AROUND_THE_CHANGE = timedelta(days=2, hours=12)  # the day before, of and after the change


@pytest.mark.parametrize(
    ("tz", "line", "after", "expected"),
    [
        (
            BERLIN,
            "30 2 * * *",
            "2024-03-30T00:00Z",
            ["2024-03-30T02:30+01:00", "2024-03-31T03:00+02:00", "2024-04-01T02:30+02:00"],
        ),
        (
            NEW_YORK,
            "30 2 * * *",
            "2024-03-09T00:00Z",
            ["2024-03-09T02:30-05:00", "2024-03-10T03:00-04:00", "2024-03-11T02:30-04:00"],
        ),
    ],
)
def test_a_time_of_day_that_spring_forward_skips_fires_once_right_after_the_gap(
    tz: str, line: str, after: str, expected: list[str]
) -> None:
    assert (
        in_zone(schedule(line, tz).ticks(at(after), at(after) + AROUND_THE_CHANGE), tz) == expected
    )


@pytest.mark.parametrize(
    ("tz", "line", "after", "expected"),
    [
        (
            BERLIN,
            "30 2 * * *",
            "2024-10-26T00:00Z",
            ["2024-10-26T02:30+02:00", "2024-10-27T02:30+02:00", "2024-10-28T02:30+01:00"],
        ),
        (
            NEW_YORK,
            "30 1 * * *",
            "2024-11-02T00:00Z",
            ["2024-11-02T01:30-04:00", "2024-11-03T01:30-04:00", "2024-11-04T01:30-05:00"],
        ),
    ],
)
def test_a_time_of_day_that_fall_back_repeats_fires_at_its_first_occurrence_only(
    tz: str, line: str, after: str, expected: list[str]
) -> None:
    assert (
        in_zone(schedule(line, tz).ticks(at(after), at(after) + AROUND_THE_CHANGE), tz) == expected
    )


def test_a_daily_time_is_not_repeated_when_the_search_starts_in_the_repeated_hour() -> None:
    daily = schedule("30 2 * * *", BERLIN)
    second_pass = at("2024-10-27T02:10+01:00")  # the clock already showed 02:30 an hour ago
    assert daily.next_tick(second_pass).isoformat() == "2024-10-28T01:30:00+00:00"


def test_times_of_day_in_the_gap_collapse_into_one_tick() -> None:
    ticks = schedule("0 2,3 * * *", BERLIN).ticks(at("2024-03-30T12:00Z"), at("2024-03-31T12:00Z"))
    assert in_zone(ticks, BERLIN) == ["2024-03-31T03:00+02:00"]


@pytest.mark.parametrize(
    ("tz", "after", "expected"),
    [
        (
            BERLIN,
            "2024-10-26T22:30Z",
            ["01:00+02:00", "02:00+02:00", "02:00+01:00", "03:00+01:00", "04:00+01:00"],
        ),
        (
            BERLIN,
            "2024-03-30T22:30Z",
            ["00:00+01:00", "01:00+01:00", "03:00+02:00", "04:00+02:00", "05:00+02:00"],
        ),
        (
            NEW_YORK,
            "2024-11-03T03:30Z",
            ["00:00-04:00", "01:00-04:00", "01:00-05:00", "02:00-05:00", "03:00-05:00"],
        ),
        (
            NEW_YORK,
            "2024-03-10T04:30Z",
            ["00:00-05:00", "01:00-05:00", "03:00-04:00", "04:00-04:00", "05:00-04:00"],
        ),
    ],
)
def test_an_hourly_line_fires_at_every_real_hour_through_both_changes(
    tz: str, after: str, expected: list[str]
) -> None:
    hourly = schedule("0 * * * *", tz)
    ticks = hourly.ticks(at(after), at(after) + timedelta(hours=5))
    assert ticks == [at(after) + timedelta(minutes=30, hours=n) for n in range(5)]
    assert [text[11:] for text in in_zone(ticks, tz)] == expected  # the clock, without the date


@pytest.mark.parametrize("tz", [BERLIN, NEW_YORK])
@pytest.mark.parametrize("change", [0, 1], ids=["spring-forward", "fall-back"])
def test_every_15_minutes_is_every_15_real_minutes_through_a_change(tz: str, change: int) -> None:
    start = CHANGES[tz][change] - timedelta(hours=2)
    ticks = schedule("*/15 * * * *", tz).ticks(start, start + timedelta(hours=4))
    assert ticks == [start + timedelta(minutes=15 * n) for n in range(1, 17)]


def test_a_rhythm_line_skips_the_wall_times_spring_forward_skips() -> None:
    ticks = schedule("30 * * * *", BERLIN).ticks(at("2024-03-30T23:45Z"), at("2024-03-31T02:00Z"))
    assert in_zone(ticks, BERLIN) == ["2024-03-31T01:30+01:00", "2024-03-31T03:30+02:00"]


@pytest.mark.parametrize("tz", [BERLIN, NEW_YORK])
@pytest.mark.parametrize("line", ["* * * * *", "0 * * * *", "20,50 * * * *", "0 */2 * * *"])
def test_a_rhythm_line_fires_whenever_the_local_clock_shows_a_matching_time(
    tz: str, line: str
) -> None:
    zone = ZoneInfo(tz)
    for change in CHANGES[tz]:
        start, end = change - timedelta(hours=3), change + timedelta(hours=3)
        minutes = [start + timedelta(minutes=n) for n in range(1, 361)]
        shown = [
            m for m in minutes if croniter.match(line, m.astimezone(zone).replace(tzinfo=None))
        ]
        assert schedule(line, tz).ticks(start, end) == shown


@pytest.mark.parametrize(
    ("line", "expected"),
    [("30 2 27 10 *", "2024-10-27T02:30+02:00"), ("* 2 27 10 *", "2024-10-27T02:00+02:00")],
)
def test_a_search_over_months_sees_both_changes_it_crosses(line: str, expected: str) -> None:
    tick = schedule(line, BERLIN).next_tick(at("2024-01-01T00:00Z"))  # CET then, and again
    assert in_zone([tick], BERLIN) == [expected]  # the first 02:xx of the repeated hour


def test_ticks_come_back_in_utc_whatever_zone_the_input_is_in() -> None:
    tick = schedule("0 9 * * *", BERLIN).next_tick(at("2024-06-01T12:00-04:00"))
    assert tick.tzinfo is UTC
    assert tick == at("2024-06-02T09:00+02:00")


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        schedule("* * * * *").next_tick(datetime(2024, 1, 1))


# --- per-second lines -----------------------------------------------------------------------


def test_a_six_field_line_fires_on_seconds() -> None:
    every_20s = schedule("* * * * * */20")
    ticks = every_20s.ticks(at("2024-01-01T00:00:00.500000Z"), at("2024-01-01T00:01:00Z"))
    assert [tick.strftime("%H:%M:%S") for tick in ticks] == ["00:00:20", "00:00:40", "00:01:00"]


def test_an_every_second_line_runs_straight_through_spring_forward() -> None:
    start = CHANGES[BERLIN][0] - timedelta(seconds=2)
    ticks = schedule("* * * * * *", BERLIN).ticks(start, start + timedelta(seconds=4))
    assert ticks == [start + timedelta(seconds=n) for n in range(1, 5)]


def test_next_tick_is_strictly_after_a_tick() -> None:
    every_second = schedule("* * * * * */1")
    tick = at("2024-01-01T00:00:05Z")
    assert every_second.next_tick(tick) == tick + timedelta(seconds=1)


# --- missed ticks ---------------------------------------------------------------------------

HOURLY_AFTER_DOWNTIME = {"last_tick": at("2024-01-01T10:00Z"), "now": at("2024-01-01T13:30Z")}


@pytest.mark.parametrize(
    ("missed", "expected"),
    [("skip", []), ("once", ["13:00"]), ("all", ["11:00", "12:00", "13:00"])],
)
def test_the_missed_policy_picks_which_missed_ticks_are_due(
    missed: str, expected: list[str]
) -> None:
    hourly = schedule("0 * * * *", missed=missed)
    assert [tick.strftime("%H:%M") for tick in hourly.due(**HOURLY_AFTER_DOWNTIME)] == expected


def test_all_catches_up_at_most_max_catch_up_ticks_the_latest_ones() -> None:
    hourly = schedule("0 * * * *", missed="all", max_catch_up=2)
    assert [tick.strftime("%H:%M") for tick in hourly.due(**HOURLY_AFTER_DOWNTIME)] == [
        "12:00",
        "13:00",
    ]


def test_a_long_outage_of_a_per_second_line_catches_up_only_the_latest_ticks() -> None:
    every_second = schedule("* * * * * *", missed="all", max_catch_up=3)
    now = at("2024-01-08T00:00:00Z")
    assert every_second.due(now - timedelta(days=7), now) == [
        now - timedelta(seconds=2),
        now - timedelta(seconds=1),
        now,
    ]


@pytest.mark.parametrize("missed", ["skip", "once", "all"])
def test_nothing_is_due_for_a_schedule_that_never_ran_or_missed_nothing(missed: str) -> None:
    hourly = schedule("0 * * * *", missed=missed)
    assert hourly.due(None, at("2024-01-01T13:00Z")) == []
    assert hourly.due(at("2024-01-01T13:00Z"), at("2024-01-01T13:59Z")) == []
    assert hourly.due(at("2024-01-01T15:00Z"), at("2024-01-01T13:00Z")) == []


@pytest.mark.parametrize(
    ("late_by", "due"),
    [(timedelta(0), True), (timedelta(seconds=60), True), (timedelta(seconds=61), False)],
)
def test_with_skip_a_tick_reached_within_the_grace_is_late_not_missed(
    late_by: timedelta, due: bool
) -> None:
    hourly = schedule("0 * * * *", missed="skip")  # grace: one minute
    tick = at("2024-01-01T13:00Z")
    expected = [tick] if due else []
    assert hourly.due(tick - timedelta(hours=1), tick + late_by) == expected


# --- job ids --------------------------------------------------------------------------------


def test_a_tick_has_one_job_id_whatever_zone_it_is_written_in() -> None:
    nightly = parse_schedule("nightly_report", "0 3 * * *", job="report", tz=BERLIN)
    tick = nightly.next_tick(at("2024-06-01T12:00Z"))
    assert nightly.job_id(tick) == "cron:nightly_report:2024-06-02T01:00:00Z"
    assert nightly.job_id(tick.astimezone(ZoneInfo(NEW_YORK))) == nightly.job_id(tick)
    assert nightly.job_id(nightly.next_tick(tick)) == "cron:nightly_report:2024-06-03T01:00:00Z"


def test_a_ticks_call_carries_the_schedule_and_the_tick() -> None:
    nightly = parse_schedule(
        "nightly_report", "0 3 * * *", job="report", queue="low", args=(7,), kwargs={"full": True}
    )
    assert nightly.call(at("2024-06-02T03:00Z")) == JobCall(
        "report",
        args=(7,),
        kwargs={"full": True},
        queue="low",
        job_id="cron:nightly_report:2024-06-02T03:00:00Z",
        meta={"pulsarjobs-schedule": "nightly_report", "pulsarjobs-tick": "2024-06-02T03:00:00Z"},
    )


# --- declaration checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("61 * * * *", "minute 61 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 9 32 * *", "day of month 32 is out of range 1-31"),
        ("0 9 * 13 *", "month 13 is out of range 1-12"),
        (
            "0 9 * * FUNDAY",
            "day of week 'FUNDAY' is not valid: "
            "days of the week run 0-7 (0 and 7 are Sunday) or SUN-SAT",
        ),
        ("*/0 * * * *", "minute '*/0' is not valid: minutes run 0-59"),
        ("0 9 * * * 60", "second 60 is out of range 0-59"),
        (
            "0 9 * *",
            "expected 5 fields (minute hour day-of-month month day-of-week) "
            "or 6 (the same and second), got 4",
        ),
        ("0 0 31 2 *", "Day(s) [31] can never occur in month(s) [2]"),
    ],
)
def test_a_bad_cron_line_is_refused_naming_the_line_and_the_problem(
    line: str, problem: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        parse_schedule("nightly_report", line, job="report")
    assert str(refused.value) == f"cron line {line!r} for nightly_report: {problem}"


def test_aliases_and_year_fields_are_refused() -> None:
    for line in ("@daily", "0 9 * * * 0 2030"):
        with pytest.raises(ConfigurationError, match="expected 5 fields"):
            parse_schedule("nightly_report", line, job="report")


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="time zone 'Europe/Berln' for nightly_report"):
        parse_schedule("nightly_report", "0 3 * * *", job="report", tz="Europe/Berln")


def test_an_unknown_missed_policy_or_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="missed='sometimes' for x: use one of skip"):
        parse_schedule("x", "0 3 * * *", job="x", missed="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_catch_up for x must be a whole number >= 1"):
        parse_schedule("x", "0 3 * * *", job="x", max_catch_up=0)


# --- declaring on an App --------------------------------------------------------------------


@pytest.fixture
def app() -> App:
    return App(Settings())


def test_periodic_declares_the_job_and_its_schedule(app: App) -> None:
    @app.periodic("0 9 * * MON", tz=BERLIN, missed="once", queue="low", args=(7,), max_attempts=3)
    def weekly_report(week: int, full: bool = False) -> str:
        return f"week {week}"

    assert app.jobs["weekly_report"] is weekly_report
    assert weekly_report.retry.max_attempts == 3
    assert weekly_report(1) == "week 1"
    assert app.schedules == {
        "weekly_report": Schedule(
            "weekly_report", "0 9 * * MON", ZoneInfo(BERLIN), "weekly_report", args=(7,),
            missed="once",
        )
    }  # fmt: skip
    envelope = app.envelope(app.schedules["weekly_report"].call(at("2024-04-01T07:00Z")))
    assert (envelope.id, envelope.queue) == ("cron:weekly_report:2024-04-01T07:00:00Z", "low")


def test_one_job_on_two_schedules_needs_two_names(app: App) -> None:
    @app.job
    def report(kind: str) -> None: ...

    app.schedule(report, "0 9 * * *", kwargs={"kind": "daily"})
    app.schedule("report", "0 9 * * MON", kwargs={"kind": "weekly"}, name="weekly")
    assert sorted(app.schedules) == ["report", "weekly"]
    assert app.schedules["weekly"].kwargs == {"kind": "weekly"}
    with pytest.raises(ConfigurationError, match="schedule named 'report' is declared twice"):
        app.schedule(report, "0 10 * * *", kwargs={"kind": "late"})


def test_arguments_that_do_not_fit_the_function_are_refused_and_nothing_is_declared(
    app: App,
) -> None:
    with pytest.raises(ConfigurationError, match=r"weekly_report\(week: int\).*too many"):

        @app.periodic("0 9 * * MON", args=(1, 2))
        def weekly_report(week: int) -> None: ...

    assert app.jobs == {} and app.schedules == {}


def test_arguments_that_cannot_be_encoded_are_refused(app: App) -> None:
    @app.job
    def remind(when: str) -> None: ...

    with pytest.raises(ConfigurationError, match=r"schedule remind: kwargs\['when'\]"):
        app.schedule(remind, "0 9 * * *", kwargs={"when": datetime(2024, 1, 1)})  # type: ignore[dict-item]


def test_a_bad_line_on_periodic_leaves_no_job_behind(app: App) -> None:
    with pytest.raises(ConfigurationError, match="minute 61 is out of range"):

        @app.periodic("61 * * * *")
        def nightly() -> None: ...

    assert app.jobs == {}


def test_a_schedule_for_an_undeclared_job_is_refused(app: App) -> None:
    with pytest.raises(ConfigurationError, match="no job named 'reprot' is declared"):
        app.schedule("reprot", "0 9 * * *")


def test_schedule_is_public() -> None:
    assert pulsarjobs.Schedule is Schedule
