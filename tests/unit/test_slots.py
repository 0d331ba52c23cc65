"""Slots keep `--concurrency` a limit on all of a worker's jobs when it runs both kinds."""

from pulsarjobs.feed import LOOP_LANE, THREAD_LANE
from pulsarjobs.runners import Slots


def test_no_more_jobs_than_slots_and_a_freed_slot_rings_the_lane_that_waits_for_one() -> None:
    rings: list[tuple[int, int]] = []
    doorbells = [lambda n: rings.append((LOOP_LANE, n)), lambda n: rings.append((THREAD_LANE, n))]
    slots = Slots(2, doorbells)
    assert slots.take(LOOP_LANE) and slots.take(THREAD_LANE)
    assert not slots.take(THREAD_LANE)  # both in use: the thread lane waits
    slots.give()
    assert rings == [(THREAD_LANE, 1)]  # only the lane that asked; the loop's idle runners sleep on
    assert slots.take(THREAD_LANE)
    slots.give()
    assert rings == [(THREAD_LANE, 1)]  # nobody waited this time: no ring
