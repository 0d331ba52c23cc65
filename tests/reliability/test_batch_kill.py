"""Scenario: batches while workers are killed with SIGKILL (or the broker restarted): every
batch's callbacks are enqueued exactly once, and every job of every batch runs.

Exactly once is counted where it holds: the messages on the callbacks' queue, one per callback.
A callback job itself runs at least once, as every job does (a kill may run it again)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import decode
from tests.integration.helpers import read_topic, wait_until
from tests.reliability.app import CALLBACKS
from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.reliability

CONCURRENCY = 8


def test_batch_callbacks_under_worker_kill_9(scenario: Scenario) -> None:
    batches, size = scenario.sized(50, 1_000), scenario.sized(20, 100)
    processes = scenario.sized(2, 4)
    options = ("--queues", f"{CALLBACKS},default", "--concurrency", str(CONCURRENCY))
    workers = [scenario.start_worker(*options) for _ in range(processes)]
    ids = enqueue_in_background(scenario, batches, size)
    kills = 0
    deadline = time.monotonic() + 300 + batches * size / 20
    while not all_fired(scenario, ids, batches) or kills < 2:
        assert time.monotonic() < deadline, f"{fired_count(scenario, ids)} of {batches} fired"
        time.sleep(random.uniform(1, 3))
        victim = random.randrange(len(workers))
        workers[victim].kill()  # SIGKILL: its batch events and jobs go to the others
        workers[victim].wait(30)
        workers[victim] = scenario.start_worker(*options)
        kills += 1
    scenario.stop_workers()
    print(f"{kills} kills, {batches} batches of {size} jobs")
    check_callbacks(scenario, ids)


def test_batch_callbacks_across_broker_restarts(own_scenario: Scenario) -> None:
    scenario = own_scenario
    batches, size = scenario.sized(20, 200), scenario.sized(20, 100)
    options = ("--queues", f"{CALLBACKS},default", "--concurrency", str(CONCURRENCY))
    scenario.start_worker(*options)
    scenario.start_worker(*options)
    ids = enqueue_in_background(scenario, batches, size)
    restarts = 0
    deadline = time.monotonic() + 600 + batches * size / 20
    while not all_fired(scenario, ids, batches):
        assert time.monotonic() < deadline, f"{fired_count(scenario, ids)} of {batches} fired"
        if restarts < scenario.sized(2, 5):
            time.sleep(random.uniform(2, 5))
            scenario.broker.kill_and_restart()
            restarts += 1
        time.sleep(1)
    scenario.stop_workers()
    check_callbacks(scenario, ids)


def enqueue_in_background(scenario: Scenario, batches: int, size: int) -> list[str]:
    """Batches enqueued on a thread of their own while workers run (and are killed); the list
    of their ids grows as each batch's block ends."""
    app, ids = scenario.app, []
    work, done = app.jobs["work"], app.jobs["batch_done"]
    # A subscription that never acknowledges keeps every callback on the topic for counting.
    app.connection.prepare_queue(topics_for(scenario.settings, CALLBACKS).jobs, "counted")

    def enqueue() -> None:
        for _ in range(batches):
            with app.batch(on_complete=done.call("complete"), on_success=done.call("ok")) as batch:
                jobs = batch.enqueue_many([work.call(random.randint(5, 60)) for _ in range(size)])
            scenario.recorder.enqueued(jobs)
            ids.append(batch.id)

    threading.Thread(target=enqueue, daemon=True).start()
    return ids


def fired_count(scenario: Scenario, ids: list[str]) -> int:
    completed = scenario.completed()
    return sum(f"{batch_id}.on_success" in completed for batch_id in list(ids))


def all_fired(scenario: Scenario, ids: list[str], batches: int) -> bool:
    return len(ids) == batches and fired_count(scenario, ids) == batches


def check_callbacks(scenario: Scenario, ids: list[str]) -> None:
    """Every job ran; each batch's two callbacks are on their queue once each, and ran."""
    made = scenario.check()
    assert (made.lost, made.dead_lettered) == (0, 0), made.lost_ids
    expected = {f"{batch_id}.{name}" for batch_id in ids for name in ("on_complete", "on_success")}
    wait_until(lambda: expected <= scenario.completed(), 60)  # each ran: each was stored
    topic = topics_for(scenario.settings, CALLBACKS).jobs
    enqueued = Counter(
        decode(message.data()).id for message in read_topic(scenario.settings, topic)
    )
    assert set(enqueued) == expected
    twice = {job_id: count for job_id, count in enqueued.items() if count > 1}
    assert twice == {}, f"callbacks enqueued more than once: {twice}"
