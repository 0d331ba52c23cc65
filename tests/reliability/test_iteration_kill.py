"""A durable iteration (issue #26) stopped by SIGTERM five times and by kill -9 twice: every
item is processed; a graceful stop re-processes none, a kill at most the items since the last
stored position."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.reliability

INTERRUPTS = (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL, signal.SIGTERM, signal.SIGTERM,
              signal.SIGKILL, signal.SIGTERM)  # fmt: skip


def processed(directory: Path) -> Counter[int]:
    """How many times each item was processed, by the lines the job wrote."""
    times: Counter[int] = Counter()
    for path in directory.glob("items-*.txt"):
        text = path.read_text()
        times.update(int(line) for line in text[: text.rfind("\n") + 1].split())
    return times


def test_durable_iteration_across_sigterm_and_kill_9(scenario: Scenario) -> None:
    """One job iterates over the items, its position stored every `every` items. A worker runs
    it until it got through a twelfth more of them, then gets the next signal of INTERRUPTS
    and a new worker starts; the last one runs it to the end. After a SIGTERM the job goes on
    where it stopped: no item again. After a kill -9 it goes on from the last stored position:
    at most `every` items again, per kill."""
    count = scenario.sized(10_000, 100_000)
    every = scenario.sized(200, 1_000)
    directory = scenario.recorder.directory
    scenario.enqueue([scenario.app.jobs["iterate_items"].call(count, every, 300)])
    stops = Counter[str]()
    for interrupt in INTERRUPTS:
        worker = scenario.start_worker("--concurrency", "1")
        reached = sum(processed(directory).values())
        deadline = time.monotonic() + 120
        while sum(processed(directory).values()) < reached + count // 12:
            assert time.monotonic() < deadline, scenario.logs()
            time.sleep(0.05)
        worker.send_signal(interrupt)
        code = worker.wait(60)
        assert code == (0 if interrupt is signal.SIGTERM else -signal.SIGKILL), scenario.logs()
        stops[interrupt.name] += 1
    scenario.start_worker("--concurrency", "1")
    deadline = time.monotonic() + 300
    while not scenario.completed():
        assert time.monotonic() < deadline, scenario.logs()
        time.sleep(0.2)
    scenario.stop_workers()
    times = processed(directory)
    again = sum(n - 1 for n in times.values())
    kills = stops[signal.SIGKILL.name]
    notes = (f"{count:,} items, {stops[signal.SIGTERM.name]} SIGTERM and {kills} kill -9; "
             f"processed again {again} (bound {kills} x {every})")  # fmt: skip
    made = scenario.check(notes=notes)
    assert (made.lost, made.dead_lettered) == (0, 0), made.lost_ids
    assert set(times) == set(range(count))
    assert again <= kills * every
