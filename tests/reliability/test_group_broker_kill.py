"""Scenario 21: the broker killed with SIGKILL and restarted while workers hold grouped jobs'
members unacknowledged: every member runs in some group of one key, none larger than
max_size (duplicates counted)."""

from __future__ import annotations

import random
import time

import pytest

from tests.integration.helpers import wait_until
from tests.reliability.app import GROUPS
from tests.reliability.conftest import Scenario
from tests.reliability.groups import wait_for_collectors
from tests.reliability.recorder import read_events

pytestmark = pytest.mark.reliability

ROUND = 100  # members per round, a round every half second


def test_group_broker_kill_9(own_scenario: Scenario) -> None:
    scenario = own_scenario
    kills, keys = scenario.sized(1, 3), scenario.sized(20, 100)
    collects = scenario.app.jobs["collects"]
    for _ in range(2):
        scenario.start_worker("--concurrency", "8")
    wait_for_collectors(scenario, 2)
    sent = 0

    def enqueue_rounds(rounds: int) -> None:
        nonlocal sent
        for _ in range(rounds):
            now = time.time()
            calls = [(f"k{random.randrange(keys)}", collects.call(sent + n, now))
                     for n in range(ROUND)]  # fmt: skip
            scenario.recorder.enqueued(collects.enqueue_many(calls))  # type: ignore[attr-defined]
            sent += ROUND
            time.sleep(0.5)

    for _ in range(kills):
        enqueue_rounds(6)  # the broker dies while workers hold the last seconds' members
        scenario.broker.kill_and_restart()
    enqueue_rounds(4)
    wait_until(lambda: len(scenario.completed()) >= sent, 240, interval=1)
    scenario.stop_workers()
    groups = read_events(scenario.recorder.directory, "group")
    oversized = sum(1 for group in groups if group["size"] > GROUPS.max_size)
    mixed = sum(1 for group in groups if len(group["keys"]) != 1)
    made = scenario.check(notes=f"{kills} broker kills, {len(groups)} groups")
    assert (made.lost, made.dead_lettered) == (0, 0), made.lost_ids
    assert (oversized, mixed) == (0, 0)
