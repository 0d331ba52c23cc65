"""Messages sent together are each told the broker's own answer, though only the last one's
answer is taken in Python (transport/answers.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulsar
import pytest

from pulsarjobs.errors import EnqueueError
from pulsarjobs.transport.answers import Acks, Outgoing, send_in_order


class Told(Acks):
    """A message's acks that keep what they were told."""

    def __init__(self, group: Acks) -> None:
        super().__init__(1)
        self.group = group
        self.told: tuple[str, object] | None = None

    def ok(self, message_id: object = None) -> None:
        self.told = ("ok", message_id)
        self.group.ok()

    def failed(self, failure: Exception) -> None:
        self.told = ("failed", failure)
        self.group.failed(failure)


class InOrderProducer:
    """Answers as the client's producer does: in the order sent, once `answer_all` is called;
    a message whose data is in `refused` is refused with a timeout, and `at_once` ones at once."""

    def __init__(
        self, refused: frozenset[bytes] = frozenset(), at_once: frozenset[bytes] = frozenset()
    ) -> None:
        self.pending: list[tuple[bytes, Callable[[Any, Any], None]]] = []
        self.refused, self.at_once = refused, at_once

    def send_async(self, data: bytes, answer: Callable[[Any, Any], None], **_: Any) -> None:
        if data in self.at_once:
            answer(pulsar.Result.Timeout, None)
        else:
            self.pending.append((data, answer))

    def answer_all(self) -> None:
        for number, (data, answer) in enumerate(self.pending):
            refused = data in self.refused
            answer(pulsar.Result.Timeout if refused else pulsar.Result.Ok, f"id-{number}")
        self.pending.clear()


def sent_together(producer: InOrderProducer, count: int) -> tuple[Acks, list[Told]]:
    group = Acks(count)
    told = [Told(group) for _ in range(count)]
    messages = [Outgoing("jobs", b"m%d" % n, None, None, None, told[n]) for n in range(count)]
    send_in_order(producer, messages)  # type: ignore[arg-type]
    return group, told


def test_each_message_is_told_its_own_message_id_once_the_last_is_answered() -> None:
    producer = InOrderProducer()
    group, told = sent_together(producer, 4)
    assert [t.told for t in told] == [None] * 4  # nothing is stored before the broker says so
    assert not group.stored.done()
    producer.answer_all()
    assert [t.told for t in told] == [("ok", f"id-{n}") for n in range(4)]
    assert group.stored.result(timeout=0) is None


def test_a_message_refused_among_stored_ones_fails_the_group_with_its_reason() -> None:
    producer = InOrderProducer(refused=frozenset({b"m1"}))
    group, told = sent_together(producer, 3)
    producer.answer_all()
    assert [t.told[0] for t in told if t.told] == ["ok", "failed", "ok"]
    with pytest.raises(EnqueueError, match="did not confirm the job on jobs"):
        group.stored.result(timeout=0)


def test_a_last_message_refused_at_once_fails_those_still_on_their_way() -> None:
    producer = InOrderProducer(at_once=frozenset({b"m2"}))
    group, told = sent_together(producer, 3)
    assert [t.told[0] for t in told if t.told] == ["failed", "failed", "failed"]
    with pytest.raises(EnqueueError):
        group.stored.result(timeout=0)
