"""Heartbeats and commands as they travel, and how a worker's silence reads."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from pulsarjobs.operations.control import CommandMessage
from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.wire.heartbeat import Heartbeat, rss_bytes
from pulsarjobs.wire.verdicts import Outcome, Verdict
from pulsarjobs.worker._stats import WorkerStats

NOW = datetime(2027, 1, 4, 12, tzinfo=UTC)


def beat(state: str = "running", sent: datetime = NOW) -> Heartbeat:
    return Heartbeat(
        worker="host:42:abc123", host="host", pid=42, subscription="pulsarjobs", queues=("a", "b"),
        concurrency=10, busy=3, processed=120, failed=4, rss_bytes=50_000_000,
        state=state,  # type: ignore[arg-type]
        started_at=NOW - timedelta(hours=1), sent_at=sent, interval=5.0,
    )  # fmt: skip


def test_a_heartbeat_comes_back_as_it_was_sent() -> None:
    assert Heartbeat.decode(beat().encode()) == beat()


def test_a_worker_silent_for_more_than_three_intervals_is_gone() -> None:
    assert beat(sent=NOW - timedelta(seconds=15)).seen_at(NOW) == "running"
    assert beat(sent=NOW - timedelta(seconds=16)).seen_at(NOW) == "gone"
    assert beat("quiet", sent=NOW - timedelta(seconds=16)).seen_at(NOW) == "gone"
    assert beat("stopped", sent=NOW - timedelta(days=1)).seen_at(NOW) == "stopped"


def test_a_heartbeat_of_an_earlier_version_names_its_subscription_group() -> None:
    fields = json.loads(beat().encode())
    fields["group"] = fields.pop("subscription")
    assert Heartbeat.decode(json.dumps(fields).encode()) == beat()


def test_heartbeats_of_other_versions_read_what_they_share() -> None:
    fields = json.loads(beat().encode())
    older = {name: value for name, value in fields.items() if name != "held_by_limit"}
    assert Heartbeat.decode(json.dumps(older).encode()).held_by_limit == 0
    newer = {**fields, "told_later": 7}  # a field a newer worker sends
    assert Heartbeat.decode(json.dumps(newer).encode()) == beat()


@pytest.mark.parametrize("data", [b"", b"{}", b"not json", b'{"worker": 1}'])
def test_what_is_no_heartbeat_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a heartbeat"):
        Heartbeat.decode(data)


def test_a_command_comes_back_as_it_was_sent_and_unknown_commands_are_refused() -> None:
    message = CommandMessage("host:42:abc123", "quiet", NOW)
    assert CommandMessage.decode(message.encode()) == message
    with pytest.raises(ValueError, match="unknown command"):
        CommandMessage.decode(
            b'{"worker": "w", "command": "explode", "sent_at": "2027-01-04T12:00:00+00:00"}'
        )


def test_the_memory_of_this_process_is_known() -> None:
    memory = rss_bytes()
    assert memory is not None and memory > 1_000_000


def test_worker_stats_count_processed_and_failed_runs() -> None:
    stats = WorkerStats(done=5, retried=2, dead=1, expired=1, early=3, duplicates=4, cancelled=2)
    assert (stats.processed, stats.failed) == (11, 3)


def test_worker_stats_count_each_verdict_under_its_name() -> None:
    stats = WorkerStats()
    for verdict in Verdict:
        stats.told("default", Outcome(verdict, Envelope(id="j", type="t", queue="default")))
    stats.count_duplicate()
    assert stats.as_dict() == {
        "done": 1,
        "retried": 1,
        "dead": 2,  # and undecodable
        "expired": 1,
        "early": 1,
        "duplicates": 2,  # and a superseded copy of a durable job
        "cancelled": 1,
        "deferred": 1,
        "snoozed": 1,
        "parked": 1,
        "grouped": 1,
    }
    assert (stats.processed, stats.failed) == (6, 3)  # a snooze is neither
