from datetime import UTC, datetime, timedelta

import pytest

from pulsarjobs.operations.durations import (
    format_duration,
    format_size,
    parse_duration,
    parse_instant,
    parse_since,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        (" 2H ", timedelta(hours=2)),
    ],
)
def test_durations_read_as_people_write_them(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "5 minutes", "h", "2h-1m", "-5m"])
def test_a_bad_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="30s, 5m, 2h, 1d"):
        parse_duration(text)


def test_an_instant_keeps_its_offset_and_one_without_is_local_time() -> None:
    assert parse_instant("2027-01-04T09:00Z") == datetime(2027, 1, 4, 9, tzinfo=UTC)
    local = parse_instant("2027-01-04T09:00")
    assert local.utcoffset() is not None
    assert local.replace(tzinfo=None) == datetime(2027, 1, 4, 9)


def test_since_is_a_duration_back_from_now_or_an_instant() -> None:
    now = datetime(2027, 1, 4, 12, tzinfo=UTC)
    assert parse_since("2h", now) == datetime(2027, 1, 4, 10, tzinfo=UTC)
    assert parse_since("2027-01-01T00:00Z", now) == datetime(2027, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since("yesterday", now)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512", 512), ("64K", 65536), ("500M", 500 * 1024**2), ("1G", 1024**3), ("1 GiB", 1024**3),
     ("1gb", 1024**3), ("1.5G", 1536 * 1024**2), ("2T", 2 * 1024**4)],
)  # fmt: skip
def test_sizes_read_in_powers_of_1024_as_pulsar_admin_reads_them(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "0", "0.1", "-1G", "1Q", "lots", "1GBB", "1iB"])
def test_a_bad_size_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="64K, 500M, 1G"):
        parse_size(text)


def test_durations_and_sizes_are_written_back_as_they_are_read() -> None:
    for text in ("30d", "1h30m", "45s", "183d", "1d2h3m4s"):
        assert format_duration(parse_duration(text)) == text
    assert [format_size(parse_size(text)) for text in ("1G", "1.5G", "500M", "64K", "512")] == [
        "1 GiB", "1.5 GiB", "500 MiB", "64 KiB", "512 B",
    ]  # fmt: skip
