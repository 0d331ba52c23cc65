"""What the ready-work count keeps of a backlog between looks: acknowledged messages leave it,
whether acknowledged in order (the mark-delete position) or out of order (acked ranges)."""

from __future__ import annotations

from array import array

from pulsarjobs.operations.ready_work import _Held, packed
from pulsarjobs.transport.backlog import Cursor


def held(*positions: tuple[int, int]) -> _Held:
    return _Held(
        array("q", [packed(position) for position in positions]),
        array("d", [float(entry) for _, entry in positions]),
        array("q", [1000 + entry for _, entry in positions]),  # a job id's hash, kept alongside
    )


def kept(found: _Held) -> list[tuple[int, float]]:
    assert [job - 1000 for job in found.ids] == [int(due) for due in found.dues]
    return [
        (position & 0xFFFFFFFF, due)
        for position, due in zip(found.positions, found.dues, strict=True)
    ]


def test_messages_acknowledged_in_order_or_in_ranges_are_forgotten_with_their_due_times() -> None:
    found = held(*[(7, entry) for entry in range(10)], (9, 0), (9, 1))
    found.forget_acked(Cursor((7, 2), acked=(((7, 4), (7, 6)), ((7, 8), (9, 0)))))
    assert kept(found) == [(3, 3.0), (4, 4.0), (7, 7.0), (8, 8.0), (1, 1.0)]


def test_a_cursor_before_everything_read_keeps_it_all() -> None:
    found = held((7, 0), (7, 1))
    found.forget_acked(Cursor((7, -1)))
    assert kept(found) == [(0, 0.0), (1, 1.0)]


def test_a_cursor_past_everything_read_forgets_it_all() -> None:
    found = held((7, 0), (7, 1))
    found.forget_acked(Cursor((8, 5)))
    assert kept(found) == []
