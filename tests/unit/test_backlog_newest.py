"""Reading a backlog newest first steps back over the ledgers: the position n messages before
another, across ledgers, and the end of a topic's open ledger counted from its last message."""

from __future__ import annotations

from pulsarjobs.transport.backlog_newest import ledger_spans, step_back

SPANS = [(7, 3), (9, 0), (12, 5)]  # ledger 7 holds 7:0..7:2, 9 none, 12 holds 12:0..12:4


def test_step_back_within_a_ledger() -> None:
    assert step_back(SPANS, (12, 5), 2) == (12, 3)
    assert step_back(SPANS, (12, 5), 5) == (12, 0)


def test_step_back_across_ledgers_skips_an_empty_one() -> None:
    assert step_back(SPANS, (12, 2), 3) == (7, 2)
    assert step_back(SPANS, (12, 0), 3) == (7, 0)


def test_step_back_past_the_first_message_is_none() -> None:
    assert step_back(SPANS, (12, 2), 6) is None


def test_the_open_ledger_counts_up_to_the_last_message() -> None:
    stats = {"ledgers": [{"ledgerId": 7, "entries": 3}, {"ledgerId": 12, "entries": 0}]}
    assert ledger_spans(stats, (12, 4)) == [(7, 3), (12, 5)]
