"""Slots keep `--concurrency` a limit on all of a worker's jobs when it runs both kinds."""

from pulsarjobs.runners import Slots


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
