"""The operations commands without a broker: usage errors exit 2, JSON output, worker ids."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import typer
from typer.testing import CliRunner

from pulsarjobs.cli import app
from pulsarjobs.cli.workers import pick
from pulsarjobs.errors import BrokerUnavailable
from pulsarjobs.operations.inspector import WorkerStatus, is_current
from pulsarjobs.operations.jsonable import jsonable
from pulsarjobs.transport.connection import probe
from pulsarjobs.transport.topics import topic_kind

runner = CliRunner()
NOW = datetime(2027, 1, 4, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "command",
    [
        ["enqueue", "greet", "--args", "{not json"],
        ["enqueue", "greet", "--args", '{"a": 1}'],
        ["enqueue", "greet", "--in", "5m", "--at", "2027-01-04T09:00Z"],
        ["enqueue", "greet", "--in", "soon"],
        ["queues", "--watch", "--json"],
        ["dlq", "list", "default", "--since", "yesterday"],
        ["topics", "create", "audit", "--partitions", "-1"],
        ["namespace", "create", "--ttl", "forever"],
        ["--service-url", "http://wrong-scheme", "queues"],
        ["no-such-command"],
    ],
    ids=" ".join,
)
def test_a_usage_error_exits_2_before_anything_is_sent(command: list[str]) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == 2, result.output


def test_json_output_writes_times_durations_and_bytes_as_json_values() -> None:
    @dataclass(frozen=True)
    class Thing:
        at: datetime
        raw: bytes
        names: tuple[str, ...]

    value = jsonable(Thing(NOW, b"\x00\xff", ("a", "b")))
    assert json.loads(json.dumps(value)) == {
        "at": "2027-01-04T12:00:00+00:00", "raw": "AP8=", "names": ["a", "b"],
    }  # fmt: skip


def status(worker: str, state: str = "running", silent: float = 30.0) -> WorkerStatus:
    return WorkerStatus(
        worker=worker, state=state, host="h", pid=1, subscription="g", queues=("default",),  # type: ignore[arg-type]
        concurrency=1, busy=0, processed=0, failed=0, rss_bytes=None, started_at=NOW,
        last_seen=NOW, silent_seconds=silent,
    )  # fmt: skip


def test_a_worker_is_named_by_its_id_or_enough_of_its_start() -> None:
    workers = [status("web:1:aaa"), status("web:12:bbb"), status("cron:7:ccc", "gone")]
    assert pick(workers, "web:1:aaa").worker == "web:1:aaa"
    assert pick(workers, "web:12").worker == "web:12:bbb"
    for ambiguous_missing_or_gone in ("web:1", "db", "cron"):
        with pytest.raises(typer.Exit) as exited:
            pick(workers, ambiguous_missing_or_gone)
        assert exited.value.exit_code == 1


def test_stopped_workers_and_those_gone_for_over_a_day_are_not_listed_by_default() -> None:
    assert is_current(status("w", "running"))
    assert is_current(status("w", "gone", silent=3600))
    assert not is_current(status("w", "gone", silent=2 * 86400))
    assert not is_current(status("w", "stopped", silent=1))


def test_topics_say_what_they_are_for() -> None:
    names = ("emails", "emails-g-RETRY", "emails-g-DLQ", "pulsarjobs-workers", "pulsarjobs-control")
    kinds = [topic_kind(name) for name in (*names, "x-y")]
    assert kinds == [
        "queue",
        "retries",
        "dead letters",
        "worker heartbeats",
        "worker commands",
        "topic",
    ]


def test_a_closed_port_is_reported_at_once_naming_the_url() -> None:
    with pytest.raises(BrokerUnavailable, match=r"pulsar://127\.0\.0\.1:1 "):
        probe("pulsar://127.0.0.1:1")
