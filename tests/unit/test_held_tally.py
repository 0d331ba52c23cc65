"""A held backlog's count kept between looks is the count made afresh: after jobs were appended
(one of them due since the last look), after some were acknowledged, after a cancel, and once a
job counted as due later has come due. And it is reused, not recounted, when nothing changed."""

from __future__ import annotations

from array import array

from pulsarjobs.operations.held_tally import Tally, tallied

NONE: frozenset[int] = frozenset()


def counts(tally: Tally) -> tuple[int, int, int, float | None]:
    return tally.due, tally.later, tally.dropped, tally.oldest_due


def afresh(dues: list[float], ids: list[int], cancelled: frozenset[int], now: float) -> Tally:
    return tallied(array("d", dues), array("q", ids), 0, cancelled, now, None)


def test_appended_jobs_are_counted_with_those_before() -> None:
    dues, ids = array("d", [10.0, 50.0]), array("q", [1, 2])
    first = tallied(dues, ids, 0, NONE, 20.0, None)
    assert counts(first) == (1, 1, 0, 10.0)
    dues.extend([5.0, 60.0])
    ids.extend([3, 4])
    kept = tallied(dues, ids, 0, NONE, 30.0, first)
    assert counts(kept) == counts(afresh(list(dues), list(ids), NONE, 30.0)) == (2, 2, 0, 5.0)
    dues.append(25.0)  # due between the last look and this one
    ids.append(5)
    again = tallied(dues, ids, 0, NONE, 30.0, kept)
    assert counts(again) == counts(afresh(list(dues), list(ids), NONE, 30.0)) == (3, 2, 0, 5.0)


def test_a_job_coming_due_an_acknowledgement_or_a_cancel_counts_afresh() -> None:
    dues, ids = array("d", [10.0, 50.0, 70.0]), array("q", [1, 2, 3])
    first = tallied(dues, ids, 0, NONE, 20.0, None)
    assert counts(tallied(dues, ids, 0, NONE, 55.0, first)) == (2, 1, 0, 10.0)
    assert counts(tallied(dues[1:], ids[1:], 1, NONE, 30.0, first)) == (0, 2, 0, None)
    assert counts(tallied(dues, ids, 0, frozenset({3}), 30.0, first)) == (1, 1, 1, 10.0)


def test_nothing_changed_is_not_counted_again() -> None:
    dues, ids = array("d", [10.0] * 1000), array("q", range(1000))
    first = tallied(dues, ids, 0, NONE, 20.0, None)
    assert tallied(dues, ids, 0, NONE, 40.0, first) == first
