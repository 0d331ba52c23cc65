"""Ordered jobs on the real broker: one at a time per key, in enqueue order, across workers."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pulsarjobs.app import App
from pulsarjobs.errors import NotFound
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topic_stats import subscription_of
from pulsarjobs.transport.topics import topics_for
from tests.apps.flow import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    records,
    settings_env,
    start_worker_process,
    stop_process,
    wait_until,
)

# The size is 100 keys x 100 jobs; CI runs a smaller one unless asked.
FULL = os.environ.get("PULSARJOBS_TEST_FULL_FLOW") == "1"
KEYS, PER_KEY = (100, 100) if FULL else (20, 20)


def consumers(app: App, topic: str) -> int:
    with Admin(app.settings.admin_url) as admin:
        try:
            stats = admin.stats(topic)
        except NotFound:
            return 0
    return len(subscription_of(stats, app.settings.subscription).get("consumers", []))


@pytest.fixture
def flow_app(broker: BrokerUnderTest) -> Iterator[App]:
    created = make_app(fresh_settings(broker))
    yield created
    created.close()


def test_jobs_of_a_key_run_one_at_a_time_in_order_over_three_workers(
    flow_app: App, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    env = settings_env(flow_app.settings, record)
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    workers = [
        start_worker_process(env, log, "--concurrency", "8", app="tests.apps.flow:app")
        for log in logs
    ]
    step = flow_app.jobs["ordered_step"]
    try:
        # Key_Shared hands a consumer that joins late only keys it has not seen yet: enqueue
        # once all three are subscribed, or the last may get none.
        ordered = topics_for(flow_app.settings, step.queue).ordered
        wait_until(lambda: consumers(flow_app, ordered) == 3, 120, interval=0.5)
        calls = [
            # Key 0's first job fails once: every job of key 0 waits for its retry.
            step.call(key, n, fail_first=(key == 0 and n == 0)).with_options(order_key=str(key))
            for n in range(PER_KEY)
            for key in range(KEYS)
        ]
        flow_app.enqueue_many(calls)
        total = KEYS * PER_KEY + 1  # and key 0's retry
        ends = lambda: [r for r in records(record) if r["event"] == "end"]  # noqa: E731
        wait_until(lambda: len(ends()) >= total, 600, interval=1)
    finally:
        for worker, log in zip(workers, logs, strict=True):
            assert stop_process(worker) == 0, log.read_text()[-2000:]
    by_key: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for run in records(record):
        by_key[run["key"]].append(run)
    for key, runs in by_key.items():
        runs.sort(key=lambda run: run["t"])
        events = [(run["event"], run["n"]) for run in runs]
        expected = [(event, n) for n in range(PER_KEY) for event in ("start", "end")]
        if key == 0:
            expected = [("start", 0), ("end", 0), *expected]  # the failed first attempt
        assert events == expected, f"key {key} ran out of order or overlapping: {events[:12]}"
    assert len({run["pid"] for run in records(record)}) == 3, "the keys were not spread"
