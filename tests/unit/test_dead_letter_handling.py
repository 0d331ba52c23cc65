"""What replay and purge rely on, without a broker: which dead letters a filter picks, which
messages a subscription still holds, and the identity that lets a replay resume."""

from datetime import UTC, datetime, timedelta

import pulsar
import pytest

from pulsarjobs.operations.dead_letters import DeadLetter, DeadLetterFilter
from pulsarjobs.operations.replay import back_to_work, producer_name, sequence_id
from pulsarjobs.transport.backlog import Cursor
from pulsarjobs.wire.envelope import Envelope, JobError

NOW = datetime(2027, 1, 4, 12, tzinfo=UTC)


def letter(job_type: str = "charge", error: str = "ValueError: card declined") -> DeadLetter:
    return DeadLetter(
        job_id="j1",
        job_type=job_type,
        reason="failed 3 of 3 attempts",
        error=error,
        dead_at=NOW - timedelta(hours=1),
        origin_topic="persistent://public/pulsarjobs/default",
        message_id="7:3",
        envelope=None,
    )


def test_a_filter_picks_by_type_error_text_and_time() -> None:
    assert DeadLetterFilter().matches(letter())
    assert DeadLetterFilter(job_type="charge").matches(letter())
    assert not DeadLetterFilter(job_type="refund").matches(letter())
    assert DeadLetterFilter(error="DECLINED").matches(letter())
    assert DeadLetterFilter(error="3 of 3").matches(letter())  # the reason counts too
    assert not DeadLetterFilter(error="KeyError").matches(letter())
    assert DeadLetterFilter(since=NOW - timedelta(hours=2)).matches(letter())
    assert not DeadLetterFilter(since=NOW - timedelta(minutes=30)).matches(letter())


def test_the_cursor_knows_what_was_acknowledged_in_and_out_of_order() -> None:
    cursor = Cursor.parse(
        {"markDeletePosition": "11:0", "individuallyDeletedMessages": "[(11:2..11:4],(11:6..11:7]]"}
    )
    acked = [entry for entry in range(10) if cursor.is_acked((11, entry))]
    assert acked == [0, 3, 4, 7]
    assert not cursor.is_acked((12, 0))
    assert Cursor.parse({"markDeletePosition": "9:-1"}).acked == ()


def message_id(ledger: int, entry: int, batch: int = -1) -> pulsar.MessageId:
    return pulsar.MessageId(ledger_id=ledger, entry_id=entry, batch_index=batch)


def test_sequence_ids_grow_with_the_position_on_the_topic() -> None:
    positions = [(7, 0), (7, 1), (7, 90_000), (8, 0), (2**31 - 1, 2**32 - 1)]
    ids = [sequence_id(message_id(ledger, entry)) for ledger, entry in positions]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert sequence_id(message_id(7, 1, batch=0)) is None  # a batched message stays put


def test_the_same_replay_command_gets_the_same_producer_and_another_one_does_not() -> None:
    dead, queue = "persistent://p/ns/default-g-DLQ", "persistent://p/ns/default"
    since = datetime(2027, 1, 4, tzinfo=UTC)
    first = producer_name(dead, queue, DeadLetterFilter(job_type="charge", since_text="2h"))
    again = producer_name(
        dead, queue, DeadLetterFilter(job_type="charge", since=since, since_text="2h")
    )
    assert first == again
    assert first != producer_name(dead, queue, DeadLetterFilter())
    assert first != producer_name(
        dead, "persistent://p/ns/other", DeadLetterFilter(job_type="charge", since_text="2h")
    )


def test_a_replayed_job_starts_over_and_keeps_its_error_in_meta() -> None:
    error = JobError("ValueError", "card declined", "Traceback...", NOW, "w1")
    dead = Envelope(
        id="j1", type="charge", queue="default", attempt=3, run_at=NOW, last_error=error,
        meta={"traceparent": "00-abc"},
    )  # fmt: skip
    back = back_to_work(dead, "retries", NOW)
    assert (back.id, back.queue, back.attempt, back.run_at, back.last_error) == (
        "j1", "retries", 1, None, None,
    )  # fmt: skip
    assert back.meta["traceparent"] == "00-abc"
    assert back.meta["pulsarjobs-replayed-error"] == "ValueError: card declined"
    assert back.meta["pulsarjobs-replayed-at"] == NOW.isoformat()


@pytest.mark.parametrize("bad", ["", "[]"])
def test_a_cursor_without_acks_out_of_order_parses(bad: str) -> None:
    assert (
        Cursor.parse({"markDeletePosition": "3:5", "individuallyDeletedMessages": bad}).acked == ()
    )
