"""Scenario 22: fair queueing by key. One key's deep backlog is enqueued first, then 50 small
keys of 20 jobs each; one worker of 2 processes drains them. Counted for each small key, in the
worker process that started its first job: the jobs of other keys it started before. A key
whose lane holds no deep key stays within the bound docs/flow-control.md states; the keys that
share the deep key's lane are those the hash put there (50/L expected). With weights 3:1, two
keys' starts split 3:1."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

import pytest

from pulsarjobs import JobCall
from pulsarjobs.flow.fairness import lane_of
from tests.reliability.app import FAIR
from tests.reliability.conftest import Scenario
from tests.reliability.recorder import read_events

pytestmark = pytest.mark.reliability

PROCESSES = 2
CONCURRENCY = 4
SMALL_KEYS, SMALL_JOBS = 50, 20


def drain(scenario: Scenario, calls: list[JobCall]) -> dict[int, list[str]]:
    """Enqueue `calls`, then run them on one worker of PROCESSES processes; by process, the keys
    of the jobs it started, in the order it started them. A worker's turns begin once every lane
    had its first look at the broker, so none starts ahead only for being fetched first."""
    scenario.enqueue(calls, batch=1_000)
    scenario.start_worker("--queues", FAIR, "--processes", str(PROCESSES),
                          "--concurrency", str(CONCURRENCY))  # fmt: skip
    deadline = time.monotonic() + 120 + len(calls) / 50
    while len(started := events(scenario)) < len(calls):
        assert time.monotonic() < deadline, f"{len(started)} of {len(calls)} started"
        time.sleep(0.5)
    scenario.stop_workers()
    by_process: dict[int, list[str]] = defaultdict(list)
    for event in sorted(started, key=lambda event: event["started"]):
        by_process[event["pid"]].append(event["key"])
    return by_process


def events(scenario: Scenario) -> list[dict[str, Any]]:
    return read_events(scenario.recorder.directory, "fair_started")


def started_before(order: list[str]) -> dict[str, int]:
    """For each key, the jobs of other keys started before its first one."""
    before: dict[str, int] = {}
    seen: Counter[str] = Counter()
    for position, key in enumerate(order):
        before.setdefault(key, position - seen[key])
        seen[key] += 1
    return before


def test_a_small_key_is_not_stuck_behind_a_deep_one(scenario: Scenario) -> None:
    lanes = scenario.settings.fair_lanes
    deep_jobs = scenario.sized(2_000, 50_000)
    report = scenario.app.jobs["tenant_report"]
    small = [f"tenant-{n}" for n in range(SMALL_KEYS)]
    calls = [report.call("deep") for _ in range(deep_jobs)]
    calls += [report.call(key) for key in small for _ in range(SMALL_JOBS)]
    # Jobs of other keys a process started before the first job of a key it started: the
    # most and the fewest over the processes.
    counts: dict[str, list[int]] = defaultdict(list)
    for order in drain(scenario, calls).values():
        for key, count in started_before(order).items():
            counts[key].append(count)
    before = {key: max(each) for key, each in counts.items()}

    deep_lane = lane_of("deep", lanes)
    ahead: dict[int, int] = defaultdict(int)  # small keys' jobs enqueued earlier, by lane
    in_deep_lane, alone, late = [], [], []
    keys_in_lane = Counter(lane_of(key, lanes) for key in small)
    for key in small:
        lane = lane_of(key, lanes)
        a, ahead[lane] = ahead[lane], ahead[lane] + SMALL_JOBS
        if lane == deep_lane:
            in_deep_lane.append(key)
            continue
        # The bound in each worker process (docs/flow-control.md), `a` jobs of other keys
        # ahead in the lane (of which the process got a share): a + (a + 1) x L x W, W = 1
        # here; plus the jobs its runners took with it, whose handlers may begin first.
        bound = a + (a + 1) * lanes + CONCURRENCY
        if keys_in_lane[lane] == 1:
            alone.append((key, before[key], bound))
        if before[key] > bound:
            late.append((key, before[key], bound))
    waited = sorted(min(counts[key]) for key in in_deep_lane)
    print(f"alone in their lane (key, jobs before, bound): {alone}; in the deep key's lane: "
          f"{len(in_deep_lane)} (expected {SMALL_KEYS / lanes:.1f}), jobs before: {waited}; "
          f"beyond the bound: {late}")  # fmt: skip
    assert late == []
    # The keys the hash put in the deep key's lane waited behind its backlog: in each process,
    # at least its share of the deep key's jobs.
    assert all(count > deep_jobs // (2 * PROCESSES) for count in waited)
    # 50 keys on 16 lanes: 3.1 expected there (binomial); 10 or more has a chance below 0.1%.
    assert len(in_deep_lane) <= 9
    made = scenario.check(notes="fair")
    assert (made.lost, made.dead_lettered) == (0, 0), made.lost_ids


def test_weights_split_starts_3_to_1(scenario: Scenario) -> None:
    lanes = scenario.settings.fair_lanes
    heavy = "heavy"
    light = next(
        f"light-{n}" for n in range(100) if lane_of(f"light-{n}", lanes) != lane_of(heavy, lanes)
    )
    jobs = scenario.sized(1_200, 20_000)
    report = scenario.app.jobs["tenant_report"]
    calls = []
    for _ in range(jobs):
        calls += [report.call(heavy).with_options(fair_weight=3), report.call(light)]
    heavy_starts = light_starts = 0
    for order in drain(scenario, calls).values():
        # Counted while both keys had jobs waiting: up to the heavy key's last start.
        last_heavy = len(order) - 1 - order[::-1].index(heavy)
        counts = Counter(order[: last_heavy + 1])
        heavy_starts, light_starts = heavy_starts + counts[heavy], light_starts + counts[light]
    ratio = heavy_starts / light_starts
    print(f"while both waited: {heavy_starts} heavy, {light_starts} light: {ratio:.2f}")
    assert 2.7 <= ratio <= 3.3
    made = scenario.check(notes="fair")
    assert (made.lost, made.dead_lettered) == (0, 0), made.lost_ids
