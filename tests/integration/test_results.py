"""Job results on the real broker: values, failures, timeouts, restarts and retention."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsarjobs import App
from pulsarjobs.errors import JobFailed, ResultTimeout
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import results_topic
from tests.apps.workflows import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    read_topic,
    settings_env,
    start_worker_process,
    stop_process,
    wait_until,
    worker_in_thread,
)
from tests.integration.test_operations import cli

WAIT = 60.0  # generous: the machine is shared


@pytest.fixture
def app(broker: BrokerUnderTest) -> Iterator[App]:
    created = make_app(fresh_settings(broker))
    yield created
    created.close()


def test_a_return_value_comes_back_to_the_producer(app: App) -> None:
    with worker_in_thread(app):
        total = app.jobs["add"].enqueue(2, 3)
        described = app.jobs["describe"].enqueue("ada")
        assert app.result(total, timeout=WAIT) == 5
        assert asyncio.run(app.result_async(described, timeout=WAIT)) == {
            "name": "ada",
            "sizes": [1, 2.5, None],
            "raw": b"\x00\x01",
        }


def test_a_failed_job_raises_job_failed_with_the_remote_traceback(app: App) -> None:
    job_id = app.jobs["fails"].enqueue("disk full")
    with worker_in_thread(app), pytest.raises(JobFailed) as failed:
        app.result(job_id, timeout=WAIT)
    assert (failed.value.error_type, failed.value.error_message) == ("ValueError", "disk full")
    assert "raise ValueError(reason)" in failed.value.remote_traceback
    assert job_id in str(failed.value)


def test_no_result_within_the_timeout_raises_a_timeout_error(app: App) -> None:
    job_id = app.jobs["add"].enqueue(1, 1)  # no worker runs it
    with pytest.raises(TimeoutError, match=f"no result of job {job_id} within 0.5 s"):
        app.result(job_id, timeout=0.5)
    with pytest.raises(ResultTimeout):
        asyncio.run(app.result_async(job_id, timeout=0.5))
    no_result = app.jobs["no_result"].enqueue()
    with worker_in_thread(app):
        assert app.result(job_id, timeout=WAIT) == 2  # the same id, once it ran
        with pytest.raises(ResultTimeout):  # it ran, but keeps no result
            app.result(no_result, timeout=2)


def test_a_result_outlives_the_worker_and_is_read_by_another_process(
    app: App, tmp_path: Path
) -> None:
    env = settings_env(app.settings, tmp_path / "runs")
    job_id = app.jobs["add"].enqueue(40, 2)
    worker = start_worker_process(env, tmp_path / "worker.log", app="tests.apps.workflows:app")
    try:
        assert app.result(job_id, timeout=WAIT) == 42
    finally:
        assert stop_process(worker) == 0
    restarted = start_worker_process(env, tmp_path / "worker.log", app="tests.apps.workflows:app")
    try:
        later = make_app(app.settings)  # a producer started after the result was stored
        try:
            assert later.result(job_id, timeout=0) == 42
        finally:
            later.close()
        shown = cli(app.settings, "jobs", "result", job_id)
        assert shown.exit_code == 0, shown.output
        assert shown.stdout.strip() == "42"
    finally:
        stop_process(restarted)


def test_a_result_is_gone_once_its_retention_passed(app: App) -> None:
    job_id = app.jobs["short_lived"].enqueue()  # kept 2 s
    with worker_in_thread(app):
        assert app.result(job_id, timeout=WAIT) == "soon gone"
    time.sleep(2.5)
    later = make_app(app.settings)
    try:
        with pytest.raises(ResultTimeout):
            later.result(job_id, timeout=0.5)
    finally:
        later.close()
    with pytest.raises(ResultTimeout):  # the first reader forgets it too
        app.result(job_id, timeout=0.5)
    failed = cli(app.settings, "jobs", "result", job_id)
    assert failed.exit_code != 0
    assert "no result" in failed.output


def test_an_unencodable_return_value_is_kept_as_a_failure_and_not_retried(app: App) -> None:
    job_id = app.jobs["unencodable"].enqueue()
    with worker_in_thread(app) as worker, pytest.raises(JobFailed) as failed:
        app.result(job_id, timeout=WAIT)
    assert (worker.stats.done, worker.stats.retried, worker.stats.dead) == (1, 0, 0)
    assert failed.value.error_type == "pulsarjobs.UnencodableResult"
    assert "set is not a job argument" in failed.value.error_message
    (stored,) = read_topic(app.settings, results_topic(app.settings))
    assert stored.partition_key() == job_id
    with Admin.of(app.settings) as admin:  # the registry says what the topic holds
        registered = admin.schema(results_topic(app.settings), 0)
        assert registered is not None and json.loads(registered)["name"] == "JobResult"
        # The topic keeps results as long as the longest keep_result (1 h), then drops them.
        wait_until(lambda: (admin.topic_message_ttl(results_topic(app.settings)) or 0) > 3600, 30)


def test_the_cli_prints_a_failure_and_exits_non_zero(app: App) -> None:
    job_id = app.jobs["fails"].enqueue("no disk")
    with worker_in_thread(app):
        shown = cli(app.settings, "jobs", "result", job_id, "--wait", str(WAIT))
    assert shown.exit_code == 1
    assert "ValueError: no disk" in shown.output
    assert "raise ValueError(reason)" in shown.output


def test_a_result_outlives_a_broker_restart(broker: BrokerUnderTest, app: App) -> None:
    job_id = app.jobs["add"].enqueue(20, 22)
    with worker_in_thread(app):
        assert app.result(job_id, timeout=WAIT) == 42
    app.close()
    broker.restart()
    later = make_app(app.settings)
    try:
        assert later.result(job_id, timeout=WAIT) == 42
    finally:
        later.close()
