"""Scenario 11: a dead-letter replay killed with SIGKILL part-way, then run again: every dead
job is replayed, and runs, exactly once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pulsarjobs import Inspector
from tests.integration.helpers import wait_until
from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.reliability


def replay(scenario: Scenario) -> subprocess.Popen[bytes]:
    with (scenario.directory / "replay.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pulsarjobs", "dlq", "replay", "default"],
            env=scenario.env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def test_replay_killed_part_way(scenario: Scenario) -> None:
    count = scenario.sized(3_000, 10_000)
    broken = scenario.app.jobs["fails_until_fixed"]
    scenario.enqueue([broken.call(n) for n in range(count)])
    with Inspector(scenario.settings) as inspector:
        worker = scenario.start_worker("--concurrency", "16")
        wait_until(lambda: inspector.dead_count("default") == count, 120 + count / 50, 0.5)
        scenario.stop_workers()
        scenario.fix.touch()  # the bug is fixed: replayed jobs will work

        first = replay(scenario)
        wait_until(lambda: inspector.dead_count("default") < count, 120, interval=0.02)
        first.kill()  # part-way: some replayed, some not, some maybe sent and not acknowledged
        first.wait(30)
        left = inspector.dead_count("default")
        print(f"killed with {count - left} of {count} dead letters replayed")
        assert 0 < left < count, "the replay was not killed part-way"

        second = replay(scenario)
        assert second.wait(300) == 0, (scenario.directory / "replay.log").read_text()[-2000:]
        assert inspector.dead_count("default") == 0
    assert worker.poll() is not None
    scenario.start_worker("--concurrency", "16")
    wait_until(lambda: len(scenario.completed()) >= count, 120 + count / 50, interval=1)
    scenario.stop_workers()
    made = scenario.check(dead_letters={})  # all were replayed: each must have run once
    assert (made.lost, made.duplicates) == (0, 0), made.lost_ids
