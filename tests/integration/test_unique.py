"""Unique jobs on the real broker: one job per key across processes, the key given back."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsarjobs.app import App
from pulsarjobs.flow.limits import make_slots
from pulsarjobs.flow.unique import DuplicateJob
from pulsarjobs.transport.topics import topics_for
from tests.apps.flow import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    read_topic,
    settings_env,
    start_worker_process,
    started,
    stop_process,
    wait_until,
    worker_in_thread,
)
from tests.integration.test_dashboard import BEARER, api, dashboard
from tests.integration.test_operations import cli, cli_json

KEYS = 100
PROCESSES = 8


@pytest.fixture
def flow_app(broker: BrokerUnderTest) -> Iterator[App]:
    created = make_app(fresh_settings(broker))
    yield created
    created.close()


def test_eight_processes_enqueueing_the_same_keys_at_once_make_one_job_per_key(
    flow_app: App, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    env = settings_env(flow_app.settings, record)
    producers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.apps.flow", "unique", str(KEYS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    answers = []
    for producer in producers:
        out, err = producer.communicate(timeout=300)
        assert producer.returncode == 0, err.decode()[-3000:]
        answers.append(json.loads(out.decode().strip().splitlines()[-1]))
    # Every process learnt the same id for each key: the one job that holds it.
    assert all(answer == answers[0] for answer in answers)
    assert len(set(answers[0])) == KEYS
    worker = start_worker_process(
        env, tmp_path / "worker.log", "--concurrency", "8", app="tests.apps.flow:app"
    )
    try:
        wait_until(lambda: len(started(record)) >= KEYS, 120)
    finally:
        assert stop_process(worker) == 0, (tmp_path / "worker.log").read_text()[-2000:]
    runs = Counter(r["key"] for r in started(record))
    assert runs == Counter(range(KEYS)), "a key ran twice or never"
    assert {r["id"] for r in started(record)} == set(answers[0])


def test_a_duplicate_says_so_and_the_key_is_free_once_the_job_ran(
    flow_app: App, record: Path
) -> None:
    unique_job = flow_app.jobs["unique_job"]
    first = unique_job.enqueue(7)
    assert unique_job.enqueue(7) == first  # the holder's id, no second job
    with pytest.raises(DuplicateJob) as duplicate:
        flow_app.enqueue(unique_job.call(7).with_options(if_duplicate="raise"))
    assert duplicate.value.job_id == first
    other = flow_app.enqueue(unique_job.call(7).with_options(unique_key="own key"))
    assert other != first  # a key of its own
    assert [hold.job_id for hold in flow_app.unique_keys.held()] == [first, other]
    with worker_in_thread(flow_app):
        wait_until(lambda: not flow_app.unique_keys.held(), 30)
    assert sorted(r["id"] for r in started(record)) == sorted([first, other])
    again = unique_job.enqueue(7)
    assert again not in (first, other)  # settled: the key was given back


def test_pulsarjobs_flow_shows_held_keys_and_limits_and_sets_a_rate(flow_app: App) -> None:
    held = flow_app.jobs["unique_job"].enqueue(1)
    result = cli(flow_app.settings, "flow", "rate", "rated", "50")
    assert result.exit_code == 0, result.output
    assert "starts at most 50 jobs a second" in result.output
    report = cli_json(flow_app.settings, "flow")
    assert report["rate_limits"] == {"rated": 50}
    assert [hold["job_id"] for hold in report["unique_keys"]] == [held]
    assert report["unique_held"] == 1
    queues = {q["queue"]: q for q in cli_json(flow_app.settings, "queues")}
    assert queues["rated"]["rate_limit"] == 50
    assert cli(flow_app.settings, "flow", "rate", "rated", "off").exit_code == 0
    assert cli_json(flow_app.settings, "flow")["rate_limits"] == {}
    bad = cli(flow_app.settings, "flow", "rate", "rated", "fast")
    assert bad.exit_code == 2 and "whole number" in bad.output


def test_the_dashboard_shows_held_keys_limits_and_rates(flow_app: App) -> None:
    held = flow_app.jobs["unique_job"].enqueue(2)
    flow_app.set_rate_limit("rated", 30)
    make_slots(flow_app.connection, "limited", 3)
    with dashboard(flow_app.settings) as client:
        page = api(client, "/queues")
        html = client.get("/queues", headers=BEARER).text
    assert [hold["job_id"] for hold in page["flow"]["unique_keys"]] == [held]
    assert page["flow"]["concurrency_limits"] == {"limited": 3}
    assert {q["queue"]: q["rate_limit"] for q in page["queues"]}["rated"] == 30
    assert held in html and 'data-testid="unique-keys"' in html


def test_enqueue_from_the_command_line_with_a_unique_and_an_order_key(flow_app: App) -> None:
    settings = flow_app.settings
    first = cli_json(settings, "enqueue", "unique_job", "--args", "[5]", "--unique-key", "k5")
    again = cli_json(settings, "enqueue", "unique_job", "--args", "[6]", "--unique-key", "k5")
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert again["id"] == first["id"]
    said = cli(settings, "enqueue", "unique_job", "--args", "[7]", "--unique-key", "k5")
    assert f"Not enqueued: job {first['id']} holds key 'k5'" in said.output
    ordered = cli_json(
        settings, "enqueue", "ordered_step", "--args", "[1, 0]", "--order-key", "account-1"
    )
    assert not ordered["duplicate"]
    (message,) = read_topic(settings, topics_for(settings, "default").ordered)
    assert message.partition_key() == "account-1"  # on the ordered jobs' topic, keyed
