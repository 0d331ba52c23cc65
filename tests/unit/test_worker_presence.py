"""Heartbeats and commands as they travel, and how a worker's silence reads."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from pulsarjobs.operations.control import CommandMessage
from pulsarjobs.operations.outbox_lag import outbox_status
from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.wire.heartbeat import Heartbeat, OutboxLag, rss_bytes
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


def relay_beat(name: str, leading: bool, sent: datetime = NOW, state: str = "running") -> Heartbeat:
    lag = OutboxLag(pending=12, oldest=NOW - timedelta(seconds=3.5), leading=leading)
    return beat(state, sent).with_changes(worker=name, queues=(), outbox=lag)


def test_a_relays_heartbeat_carries_the_outboxs_lag_told_as_one_line() -> None:
    leader = relay_beat("outbox-relay-a", leading=True)
    assert Heartbeat.decode(leader.encode()) == leader
    beats = [beat(), leader, relay_beat("outbox-relay-b", leading=False)]
    status = outbox_status(beats, NOW + timedelta(seconds=1))
    assert status is not None
    assert status.sentence() == (
        "Outbox: 12 jobs not yet published, the oldest enqueued 4.5 s ago "
        "(2 relays running: outbox-relay-a publishes)"
    )


def test_an_outbox_whose_relays_are_gone_says_so_and_one_whose_relays_stopped_is_not_shown() -> (
    None
):
    gone = relay_beat("outbox-relay-a", leading=True, sent=NOW - timedelta(minutes=1))
    status = outbox_status([beat(), gone], NOW)
    assert status is not None
    assert status.sentence().startswith("Outbox: no relay running (the last one told 12 jobs")
    assert outbox_status([beat(), relay_beat("r", True, state="stopped")], NOW) is None
    assert outbox_status([beat()], NOW) is None


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
