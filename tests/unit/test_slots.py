"""Slots keep `--concurrency` a limit on all of a worker's jobs when it runs both kinds."""

import sys
import threading

from pulsarjobs.worker._runners import Slots


def test_no_more_jobs_than_slots_and_a_freed_slot_rings_only_a_runner_that_waits_for_one() -> None:
    rings: list[str] = []
    slots = Slots(2)
    slots.on_free = lambda: rings.append("loop")
    assert slots.take() and slots.take()
    assert not slots.take()  # both in use: a loop runner waits
    slots.give()
    assert rings == ["loop"]
    assert slots.take()
    slots.give()
    assert rings == ["loop"]  # nobody waited this time: idle runners are not rung


def test_slots_taken_and_given_from_many_threads_at_once_are_neither_lost_nor_doubled() -> None:
    slots = Slots(3)

    def take_and_give() -> None:
        for _ in range(20_000):
            if slots.take():
                slots.give()

    threads = [threading.Thread(target=take_and_give) for _ in range(4)]
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between any two steps, as on a busy machine
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switching)
    assert [slots.take() for _ in range(4)] == [True, True, True, False]
