"""Scenario 20: grouped jobs' members enqueued over many keys while workers get `kill -9`:
every member runs in some group (duplicates counted), each group holds one key's members, no
more than max_size, and was stored within max_delay of its first member's enqueue."""

from __future__ import annotations

import random
import time

import pytest

from tests.reliability.app import GROUPS
from tests.reliability.conftest import Scenario
from tests.reliability.groups import wait_for_collectors
from tests.reliability.recorder import read_events

pytestmark = pytest.mark.reliability

CONCURRENCY = 8
ROUNDS = 20  # members are enqueued in this many rounds, half a second apart
# A group stored later than max_delay after its first member's enqueue, by more than this, is
# counted as late: the collector looks every 50 ms, and a killed worker's members reach the
# next worker once the broker sees its connection close.
SLACK_S = 3.0


def test_group_kill_9(scenario: Scenario) -> None:
    members, keys = scenario.sized(1_000, 10_000), scenario.sized(20, 100)
    kills_wanted = scenario.sized(2, 5)
    collects = scenario.app.jobs["collects"]
    options = ("--concurrency", str(CONCURRENCY))
    workers = [scenario.start_worker(*options) for _ in range(2)]
    wait_for_collectors(scenario, len(workers))
    per_round = members // ROUNDS
    enqueued, kills, next_kill = 0, 0, time.monotonic() + random.uniform(2, 5)
    deadline = time.monotonic() + 180 + members / 20
    while enqueued < members or len(scenario.completed()) < members or kills < kills_wanted:
        assert time.monotonic() < deadline, f"{len(scenario.completed())} of {members} ran"
        if enqueued < members:
            now = time.time()
            calls = [(f"k{random.randrange(keys)}", collects.call(enqueued + n, now))
                     for n in range(per_round)]  # fmt: skip
            scenario.recorder.enqueued(collects.enqueue_many(calls))  # type: ignore[attr-defined]
            enqueued += per_round
        time.sleep(0.5)
        if time.monotonic() >= next_kill and kills < kills_wanted:
            victim = random.randrange(len(workers))
            workers[victim].kill()  # SIGKILL: the members it held must come back
            workers[victim].wait(30)
            workers[victim] = scenario.start_worker(*options)
            kills, next_kill = kills + 1, time.monotonic() + random.uniform(2, 5)
    scenario.stop_workers()
    groups = read_events(scenario.recorder.directory, "group")
    limit = GROUPS.max_delay.total_seconds() + SLACK_S
    oversized = sum(1 for group in groups if group["size"] > GROUPS.max_size)
    mixed = sum(1 for group in groups if len(group["keys"]) != 1)
    late = sum(1 for group in groups if group["waited"] > limit)
    sizes = sorted(group["size"] for group in groups)
    made = scenario.check(notes=f"{kills} kills, {len(groups)} groups of {sizes[0]}-{sizes[-1]} "
                          f"(median {sizes[len(sizes) // 2]}), max wait "
                          f"{max(g['waited'] for g in groups):.1f} s")  # fmt: skip
    assert (made.lost, made.dead_lettered) == (0, 0), made.lost_ids
    assert (oversized, mixed, late) == (0, 0, 0)
    # A kill runs again the groups the worker was running, and those it had stored whose
    # members' acknowledgements had not left yet: a few groups per kill.
    assert made.duplicates <= kills * (CONCURRENCY + 2) * GROUPS.max_size
