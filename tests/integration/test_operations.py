"""Operating pulsarjobs from the command line, on a real broker: queues, topics, workers, dead
letters, enqueue, and a broker that is down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pulsar
import pytest
from typer.testing import CliRunner, Result

from pulsarjobs.app import App, JobCall
from pulsarjobs.broker.process import free_port
from pulsarjobs.cli import app as cli_app
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.settings import Settings
from pulsarjobs.transport.topics import topics_for
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    settings_env,
    start_worker_process,
    started,
    wait_until,
    worker_in_thread,
)

runner = CliRunner()


def cli(settings: Settings, *args: str, input: str | None = None) -> Result:
    env = {
        "PULSARJOBS_SERVICE_URL": settings.service_url,
        "PULSARJOBS_ADMIN_URL": settings.admin_url,
        "PULSARJOBS_NAMESPACE": settings.namespace,
        "COLUMNS": "200",
    }
    return runner.invoke(cli_app, list(args), env=env, input=input)


def cli_json(settings: Settings, *args: str) -> Any:
    result = cli(settings, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def queue_stats(settings: Settings, queue: str = "default") -> dict[str, Any]:
    (found,) = [q for q in cli_json(settings, "queues") if q["queue"] == queue]
    return dict(found)


def subscription_backlog(settings: Settings, topic: str, subscription: str) -> int:
    path = topic.removeprefix("persistent://")
    response = httpx.get(f"{settings.admin_url}/admin/v2/persistent/{path}/stats")
    if response.status_code == 404:
        return 0  # not created yet
    # A worker creates the topic, then its subscription: between the two there is none.
    found = response.json()["subscriptions"].get(subscription, {})
    return int(found.get("msgBacklog", 0))


def dead_count(settings: Settings) -> int:
    return subscription_backlog(
        settings, topics_for(settings, "default").dead, "pulsarjobs-dead-letters"
    )


def waiting_count(settings: Settings) -> int:
    return subscription_backlog(settings, topics_for(settings, "default").jobs, "pulsarjobs")


def kill_all(app: App, calls: list[JobCall]) -> list[str]:
    """Enqueue jobs that die at their first run; return once all are dead letters."""
    ids = app.enqueue_many(calls)
    with worker_in_thread(app, concurrency=20):
        wait_until(lambda: dead_count(app.settings) == len(calls), 120)
    return ids


def test_dead_letters_are_listed_and_replayed_by_type_and_run_once_fixed(
    app: App, record: Path, fix: Path
) -> None:
    settings = app.settings
    calls = [JobCall("breaks", args=(n, "value" if n % 2 else "key")) for n in range(250)]
    calls += [JobCall("also_breaks", args=(n, "value")) for n in range(250)]
    ids = kill_all(app, calls)
    breaks, also_breaks = set(ids[:250]), set(ids[250:])

    listed = cli_json(settings, "dlq", "list", "default", "--limit", "1000")
    errors = {letter["job_id"]: letter["error"] for letter in listed}
    assert errors.keys() == set(ids)
    assert errors[ids[0]] == "KeyError: 'broken key 0'"
    assert errors[ids[1]] == "ValueError: broken value 1"
    key_errors = cli_json(settings, "dlq", "list", "default", "--error", "keyerror")
    assert len(key_errors) == 50  # the default limit
    every = ("--limit", "1000")
    key_errors = cli_json(settings, "dlq", "list", "default", "--error", "KeyError", *every)
    assert len(key_errors) == 125
    table = cli(settings, "dlq", "list", "default", "--type", "also_breaks", "--limit", "3")
    assert table.exit_code == 0 and "ValueError: broken value" in table.stdout
    shown = cli(settings, "dlq", "show", ids[2])
    assert "KeyError: 'broken key 2'" in shown.stdout and "Traceback" in shown.stdout

    dry_run = cli_json(settings, "dlq", "replay", "default", "--type", "breaks", "--dry-run")
    assert (dry_run["matched"], dry_run["moved"]) == (250, 0)
    replayed = cli_json(settings, "dlq", "replay", "default", "--type", "breaks")
    assert (replayed["matched"], replayed["moved"]) == (250, 250)
    queue = queue_stats(settings)
    assert (queue["waiting"], queue["dead"]) == (250, 250)

    record.write_text("")  # from here on, count the runs of the fixed handler only
    fix.touch()
    with worker_in_thread(app, concurrency=20):
        wait_until(lambda: len(started(record)) >= 250 and waiting_count(settings) == 0, 60)
    runs = Counter(run["id"] for run in started(record))
    assert runs.keys() == breaks
    assert set(runs.values()) == {1}
    assert {run["attempt"] for run in started(record)} == {1}
    left = cli_json(settings, "dlq", "list", "default", "--limit", "1000")
    assert {letter["job_id"] for letter in left} == also_breaks


def test_a_replay_killed_half_way_and_run_again_replays_each_job_once(
    app: App, record: Path, fix: Path, tmp_path: Path
) -> None:
    settings = app.settings
    ids = kill_all(app, [JobCall("breaks", args=(n, "value")) for n in range(500)])
    # Let the broker take copies slowly, so that the kill lands half-way.
    queue_topic = f"{settings.admin_url}/admin/v2/persistent/{settings.full_namespace}/default"
    limit = {"publishThrottlingRateInMsg": 100, "publishThrottlingRateInByte": -1}
    httpx.post(f"{queue_topic}/publishRate", json=limit).raise_for_status()
    wait_until(lambda: httpx.get(f"{queue_topic}/publishRate").json() == limit, 10)
    replay = [sys.executable, "-m", "pulsarjobs", "dlq", "replay", "default"]
    env = settings_env(settings, record)
    with (tmp_path / "replay.log").open("wb") as log:
        interrupted = subprocess.Popen(replay, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: waiting_count(settings) >= 100, 60, interval=0.02)
    finally:
        interrupted.send_signal(signal.SIGKILL)
        interrupted.wait()
    half_way = waiting_count(settings)
    print(f"killed with {half_way} of 500 jobs replayed, {dead_count(settings)} still dead")
    assert half_way < 500

    httpx.delete(f"{queue_topic}/publishRate").raise_for_status()
    wait_until(lambda: httpx.get(f"{queue_topic}/publishRate").content in (b"", b"null"), 10)
    again = subprocess.run(replay, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""
    assert (waiting_count(settings), dead_count(settings)) == (500, 0)

    fix.touch()
    record.write_text("")
    with worker_in_thread(app, concurrency=20):
        wait_until(lambda: waiting_count(settings) == 0 and len(started(record)) >= 500, 60)
    runs = Counter(run["id"] for run in started(record))
    assert runs.keys() == set(ids)
    assert set(runs.values()) == {1}


def test_purge_removes_only_what_it_picks_and_replay_can_pick_another_queue(
    app: App, record: Path, fix: Path
) -> None:
    settings = app.settings
    ids = kill_all(
        app, [JobCall("breaks", args=(n, "value" if n % 2 else "key")) for n in range(4)]
    )
    purged = cli_json(settings, "dlq", "purge", "default", "--error", "KeyError", "--yes")
    assert (purged["matched"], purged["moved"]) == (2, 2)
    left = {letter["job_id"] for letter in cli_json(settings, "dlq", "list", "default")}
    assert left == {ids[1], ids[3]}

    moved = cli_json(settings, "dlq", "replay", "default", "--to-queue", "rescue")
    assert moved["moved"] == 2
    assert (queue_stats(settings, "rescue")["waiting"], dead_count(settings)) == (2, 0)
    fix.touch()
    record.write_text("")
    with worker_in_thread(app, "rescue"):
        wait_until(lambda: len(started(record)) == 2, 30)
    assert sorted((run["id"], run["queue"]) for run in started(record)) == sorted(
        [(ids[1], "rescue"), (ids[3], "rescue")]
    )


def test_queues_count_waiting_scheduled_and_dead_jobs(app: App) -> None:
    settings = app.settings
    for name in ("Ada", "Bob"):
        assert cli(settings, "enqueue", "greet", "--args", json.dumps([name])).exit_code == 0
    app.enqueue_many([app.jobs["greet"].call(f"n{n}") for n in range(5)])
    scheduled = cli_json(settings, "enqueue", "greet", "--args", '["Cy"]', "--in", "1h")
    assert scheduled["run_at"] is not None
    app.enqueue_many([app.jobs["greet"].call(f"s{n}") for n in range(3)], in_=timedelta(hours=2))
    app.enqueue(JobCall("greet", args=("Dee",), queue="low"))

    by_queue = {q["queue"]: q for q in cli_json(settings, "queues")}
    assert by_queue.keys() == {"default", "low"}
    default = by_queue["default"]
    counts = ("waiting", "scheduled", "in_flight", "dead", "consumers")
    assert {key: default[key] for key in counts} == {
        "waiting": 7, "scheduled": 4, "in_flight": 0, "dead": 0, "consumers": 0,
    }  # fmt: skip
    assert default["oldest_seconds"] >= 0
    assert by_queue["low"]["waiting"] == 1
    table = cli(settings, "queues")
    assert table.exit_code == 0 and "default" in table.stdout and "low" in table.stdout


def test_a_job_enqueued_from_the_command_line_runs_with_its_arguments(
    app: App, record: Path
) -> None:
    enqueued = cli_json(
        app.settings, "enqueue", "greet", "--args", '["Ada"]', "--kwargs", '{"punctuation": "?"}'
    )
    with worker_in_thread(app):
        wait_until(lambda: len(started(record)) == 1, 30)
    (run,) = started(record)
    assert (run["id"], run["greeting"]) == (enqueued["id"], "hello Ada?")


def test_topics_are_created_inspected_and_deleted(broker: BrokerUnderTest) -> None:
    settings = fresh_settings(broker)
    assert cli(settings, "topics", "create", "audit").exit_code == 0
    assert cli(settings, "topics", "create", "events", "--partitions", "3").exit_code == 0
    assert cli(settings, "topics", "create", "audit").exit_code == 1
    listed = {topic["name"]: topic["partitions"] for topic in cli_json(settings, "topics", "list")}
    assert listed == {"audit": 0, "events": 3}

    topic = f"persistent://{settings.full_namespace}/audit"
    client = pulsar.Client(settings.service_url)
    try:
        client.subscribe(topic, "readers", initial_position=pulsar.InitialPosition.Earliest).close()
        client.create_producer(topic).send(b"kept until read")
    finally:
        client.close()
    stats = cli_json(settings, "topics", "stats", "audit")
    assert [(sub["name"], sub["backlog"]) for sub in stats["subscriptions"]] == [("readers", 1)]

    refused = cli(settings, "topics", "delete", "audit")
    assert refused.exit_code == 1
    assert "readers: 1" in refused.stderr and "--force" in refused.stderr
    assert cli(settings, "topics", "delete", "audit", "--force").exit_code == 0
    assert cli(settings, "topics", "delete", "events").exit_code == 0
    assert cli_json(settings, "topics", "list") == []
    gone = cli(settings, "topics", "stats", "audit")
    assert gone.exit_code == 1 and "no topic" in gone.stderr


def test_workers_are_listed_made_quiet_stopped_and_seen_gone(
    broker: BrokerUnderTest, tmp_path: Path
) -> None:
    settings = fresh_settings(broker)
    env = settings_env(settings, tmp_path / "record.jsonl")
    env["PULSARJOBS_HEARTBEAT_INTERVAL"] = "1"
    first = start_worker_process(env, tmp_path / "first.log")
    second = start_worker_process(env, tmp_path / "second.log")
    try:
        wait_until(lambda: len(cli_json(settings, "workers")) == 2, 60, interval=0.5)
        ids = {worker["pid"]: worker["worker"] for worker in cli_json(settings, "workers")}
        assert {w["state"] for w in cli_json(settings, "workers")} == {"running"}
        table = cli(settings, "workers")
        assert ids[first.pid] in table.stdout and ids[second.pid] in table.stdout

        quiet = cli(settings, "workers", "quiet", ids[first.pid])
        assert quiet.exit_code == 0, quiet.output
        assert "is quiet" in quiet.stdout
        stop = cli(settings, "workers", "stop", ids[second.pid])
        assert stop.exit_code == 0, stop.output
        assert second.wait(60) == 0

        wait_until(lambda: [w["pid"] for w in cli_json(settings, "workers")] == [first.pid], 30)
        assert cli_json(settings, "workers")[0]["state"] == "quiet"
        stopped = cli_json(settings, "workers", "--all")
        assert {w["pid"]: w["state"] for w in stopped}[second.pid] == "stopped"

        first.kill()
        first.wait()
        wait_until(lambda: cli_json(settings, "workers")[0]["state"] == "gone", 30, interval=0.5)
        refused = cli(settings, "workers", "stop", ids[first.pid])
        assert refused.exit_code == 1 and "gone" in refused.stderr
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
                process.wait()


# -- a broker that is down -------------------------------------------------------------------

DOWN_COMMANDS = [
    ["queues"],
    ["queues", "--json"],
    ["workers"],
    ["workers", "stop", "some-worker"],
    ["workers", "quiet", "some-worker"],
    ["topics", "list"],
    ["topics", "create", "audit"],
    ["topics", "delete", "audit"],
    ["topics", "stats", "audit"],
    ["namespace", "create"],
    ["dlq", "list", "default"],
    ["dlq", "show", "some-job"],
    ["dlq", "replay", "default"],
    ["dlq", "purge", "default", "--yes"],
    ["enqueue", "greet", "--args", '["Ada"]'],
]


@pytest.fixture(scope="module")
def closed_port() -> int:
    return free_port()  # nothing listens there


@pytest.mark.parametrize("command", DOWN_COMMANDS, ids=" ".join)
def test_every_command_names_a_broker_that_is_down_in_one_line(
    command: list[str], closed_port: int
) -> None:
    settings = Settings(
        service_url=f"pulsar://127.0.0.1:{closed_port}",
        admin_url=f"http://127.0.0.1:{closed_port}",
    )
    result = cli(settings, *command)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and f"127.0.0.1:{closed_port}" in line
    assert result.stdout == ""


def test_a_broker_that_is_down_gets_no_traceback_from_a_real_process(closed_port: int) -> None:
    env = {
        **os.environ,
        "PULSARJOBS_SERVICE_URL": f"pulsar://127.0.0.1:{closed_port}",
        "PULSARJOBS_ADMIN_URL": f"http://127.0.0.1:{closed_port}",
    }
    for command in (["queues"], ["enqueue", "greet"]):
        done = subprocess.run(
            [sys.executable, "-m", "pulsarjobs", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert f"127.0.0.1:{closed_port}" in done.stderr


def test_enqueue_with_the_app_checks_the_type_and_arguments_and_takes_the_declared_queue(
    app: App, tmp_path: Path
) -> None:
    env = settings_env(app.settings, tmp_path / "record.jsonl")

    def enqueue(*args: str) -> subprocess.CompletedProcess[str]:  # as a user runs it: the app
        command = [sys.executable, "-m", "pulsarjobs", "enqueue", *args]  # loads with its env
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    with_app = ("--app", "tests.apps.pipeline:app")
    critical = enqueue("critical_job", "--args", "[1]", "--json", *with_app)
    assert critical.returncode == 0, critical.stderr
    assert json.loads(critical.stdout)["queue"] == "critical"
    assert json.loads(critical.stdout)["checked"] is True
    misspelt = enqueue("critcal_job", *with_app)
    assert misspelt.returncode == 1 and "no job 'critcal_job'" in misspelt.stderr
    wrong = enqueue("critical_job", "--args", '["one"]', *with_app)
    assert wrong.returncode == 1 and "expected int" in wrong.stderr
    unchecked = enqueue("critcal_job")
    assert unchecked.returncode == 0 and "not checked" in unchecked.stdout
    with Inspector(app.settings) as inspector:
        assert inspector.queue("critical").waiting == 1
