"""Metrics by job type: what a worker counts per job, how several workers' reports add up, and
what the Metrics page reads off them (counts, percentiles of the summed histograms, trends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.operations.metrics_history import MetricsHistory
from pulsarjobs.settings import Settings
from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.wire.type_metrics import (
    RUN_BUCKETS,
    WAIT_BUCKETS,
    QueueSize,
    Report,
    Row,
    bucket,
    percentile,
)
from pulsarjobs.wire.verdicts import Outcome, Verdict
from pulsarjobs.worker import type_metrics
from pulsarjobs.worker._stats import WorkerStats

NOW = 1_900_000_020.0  # 20 s into a minute
MINUTE = int(NOW // 60)


def job(job_type: str = "resize", queue: str = "images", waited: float = 0.0) -> Envelope:
    created = datetime.now(UTC) - timedelta(seconds=waited)
    return Envelope(id="job-1", type=job_type, queue=queue, created_at=created)


def runs(durations: list[float]) -> list[int]:
    """A run histogram of these run times."""
    counts = [0] * (len(RUN_BUCKETS) + 1)
    for seconds in durations:
        counts[bucket(RUN_BUCKETS, seconds)] += 1
    return counts


def test_a_run_time_falls_in_the_bucket_of_its_upper_bound() -> None:
    assert bucket(RUN_BUCKETS, 0.005) == 0  # on a bound: counted below it, as Prometheus does
    assert bucket(RUN_BUCKETS, 0.0051) == 1
    assert bucket(RUN_BUCKETS, 7200) == len(RUN_BUCKETS)  # over the last bound


def test_percentiles_are_interpolated_within_their_bucket() -> None:
    counts = runs([0.3] * 50 + [0.7] * 50)  # half in (0.25, 0.5], half in (0.5, 1]
    assert percentile(RUN_BUCKETS, counts, 0.5) == pytest.approx(0.5)
    assert percentile(RUN_BUCKETS, counts, 0.95) == pytest.approx(0.5 + 0.5 * 45 / 50)
    assert percentile(RUN_BUCKETS, runs([7200]), 0.5) == 3600  # over the last bound: that bound
    assert percentile(RUN_BUCKETS, runs([]), 0.5) is None


def test_two_workers_rows_add_up_to_the_row_of_all_their_runs() -> None:
    first = Row("resize", "images", {"done": 3, "retried": 1}, runs([0.02, 0.3, 0.3, 4]))
    second = Row("resize", "images", {"done": 1, "dead": 2}, runs([0.3, 9, 9]))
    total = Row("resize", "images")
    total.add(first)
    total.add(second)
    assert total.counts == {"done": 4, "retried": 1, "dead": 2}
    assert (total.processed, total.failed) == (7, 3)
    assert total.run == runs([0.02, 0.3, 0.3, 4, 0.3, 9, 9])
    assert percentile(RUN_BUCKETS, total.run, 0.5) == percentile(
        RUN_BUCKETS, runs([0.02, 0.3, 0.3, 0.3, 4, 9, 9]), 0.5
    )


def test_a_report_reads_back_as_written_and_anything_else_is_refused() -> None:
    row = Row("resize", "images", {"done": 2}, runs([0.1, 0.2]))
    report = Report("w1", MINUTE, (row,), (QueueSize("images", 12, 30.5),))
    assert Report.decode(report.encode()) == report
    for junk in (b"", b"[]", b'{"v": 2}', b'{"v": 1, "worker": "w"}'):
        with pytest.raises(ValueError):
            Report.decode(junk)


def by_type() -> WorkerStats:
    stats = WorkerStats.of(Settings())
    assert stats.per_type is not None  # reported each minute by default
    return stats


def test_the_counters_count_verdicts_run_times_and_waits_by_type_and_queue() -> None:
    stats = by_type()
    resize, report = job(waited=2.0), job("report", "reports")
    stats.told("images", Outcome(Verdict.DONE, resize, duration=0.3))
    stats.told("images", Outcome(Verdict.RETRY, resize, duration=0.7))
    stats.told("reports", Outcome(Verdict.DEAD, report, duration=None))  # never ran
    assert (stats.done, stats.retried, stats.dead) == (1, 1, 1)
    counts = stats.per_type
    assert counts is not None
    rows = {(row.type, row.queue): row for row in counts.taken()}
    assert rows["resize", "images"].counts == {"done": 1, "retried": 1}
    assert rows["resize", "images"].run == runs([0.3, 0.7])
    # each run waited from when it was due to its start: 2 s ago, less its run (1.7 s, 1.3 s)
    assert rows["resize", "images"].wait[bucket(WAIT_BUCKETS, 1.5)] == 2
    assert rows["report", "reports"].counts == {"dead": 1}
    assert sum(rows["report", "reports"].run) == 0
    assert counts.taken() == []  # taken: it starts again from zero


def test_with_reports_off_nothing_is_counted_by_type() -> None:
    stats = WorkerStats.of(Settings(metrics_interval=0))
    stats.told("images", Outcome(Verdict.DONE, job(), duration=0.3))
    assert stats.done == 1 and stats.per_type is None


def test_made_up_job_types_past_the_cap_count_as_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(type_metrics, "MAX_ROWS", 2)
    stats = by_type()
    for name in ("a", "b", "c", "d"):
        envelope = job(name)
        stats.told("images", Outcome(Verdict.DONE, envelope, duration=0.1))
    assert stats.per_type is not None
    rows = {row.type: row.processed for row in stats.per_type.taken()}
    assert rows == {"a": 1, "b": 1, "other": 2}


def history(*reports: Report) -> MetricsHistory:
    found = MetricsHistory(lambda: pytest.fail("no broker in this test"))
    for report in reports:
        found.add(report)
    found.catch_up = lambda: None  # type: ignore[method-assign]
    return found


def test_the_page_sums_workers_and_minutes_and_compares_with_the_period_before() -> None:
    resize = lambda n, failed=0: Row(  # noqa: E731
        "resize", "images", {"done": n - failed, "dead": failed}, runs([0.3] * n)
    )
    reports = history(
        Report("w1", MINUTE, (resize(10, failed=1),), (QueueSize("images", 40, 3.0),)),
        Report("w2", MINUTE, (resize(20_000),), (QueueSize("images", 50, 4.0),)),
        Report("w1", MINUTE - 5, (resize(6),)),
        Report("w1", MINUTE - 70, (resize(4),)),  # the hour before
        Report("w1", MINUTE - 200, (resize(99),)),  # older than both hours
    )
    view = reports.view("1h", now=NOW)
    (row,) = view["types"]
    assert (row["type"], row["runs"], row["dead"], row["failed"]) == ("resize", 20_016, 1, 1)
    assert row["previous_runs"] == 4 and row["trend"] == pytest.approx((20_016 - 4) / 4)
    assert row["run_p50"] == pytest.approx(0.375)
    series = view["series"]
    assert len(series["at"]) == 60 and series["at"][-1] == MINUTE * 60
    assert series["types"]["resize"][-1] == 20_010 and series["types"]["resize"][-6] == 6
    assert series["queues"]["images"][-1] == 20_010
    assert series["sizes"]["images"][-1] == 50  # the minute's latest report
    week = reports.view("7d", now=NOW)
    assert week["types"][0]["runs"] == 20_016 + 4 + 99 and len(week["series"]["at"]) == 168


def test_older_minutes_fold_into_longer_slots_and_every_view_reads_the_same() -> None:
    done = lambda n: (Row("resize", "images", {"done": n}, runs([0.3] * n)),)  # noqa: E731
    ages = [0, 1, 59, 61, 119, *range(130, 140), *range(3060, 3120), 9000, 15000]
    reports = [Report("w1", MINUTE - age, done(age + 1), (QueueSize("images", age, None),))
               for age in ages]  # fmt: skip
    found = history(*reports)
    before = {name: found.view(name, now=NOW) for name in ("1h", "24h", "7d")}
    assert found.slots == 77
    found.fold(MINUTE)
    assert found.slots == 5 + 2 + 2 + 2  # the last 2 h's minutes, then 10-minute, hour slots
    assert {name: found.view(name, now=NOW) for name in ("1h", "24h", "7d")} == before
    found.fold(MINUTE + 14 * 24 * 60)  # two weeks on: all forgotten but the newest minute
    assert found.slots == 1


def test_an_unknown_range_is_one_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="range must be one of 1h, 24h, 7d, got '2h'"):
        history().view("2h")


def test_a_negative_metrics_interval_is_one_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="metrics_interval must be >= 0 seconds"):
        Settings(metrics_interval=-1)
