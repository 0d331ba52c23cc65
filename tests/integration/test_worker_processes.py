"""Workers as users run them: `pulsarjobs worker` processes, priorities, kill -9, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path

import pytest

from pulsarjobs import Inspector
from pulsarjobs.app import App
from tests.integration.helpers import (
    settings_env,
    start_worker_process,
    started,
    stop_process,
    wait_until,
)
from tests.integration.test_operations import cli


def test_ten_thousand_jobs_over_three_priorities_two_processes_none_lost(
    app: App, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    counts = {"critical": 2_000, "default": 3_000, "low": 5_000}
    calls = [app.jobs[f"{q}_job"].call(n) for q, count in counts.items() for n in range(count)]
    enqueued = set(app.enqueue_many(calls))
    assert len(enqueued) == 10_000
    env = settings_env(app.settings, record)
    log = tmp_path / "workers.log"
    workers = start_worker_process(
        env, log, "--queues", "critical,default,low", "--processes", "2", "--concurrency", "4"
    )
    try:
        wait_until(lambda: len({r["id"] for r in started(record)}) == 10_000, 300, interval=1)
    finally:
        assert stop_process(workers) == 0, log.read_text()[-2000:]
    runs = started(record)
    assert {r["id"] for r in runs} == enqueued
    print(f"ran {len(runs)} times for 10,000 jobs ({len(runs) - 10_000} duplicates)")
    low_during_critical = low_jobs_started_while_critical_ran(runs)
    print(f"low jobs started between a worker's first and last critical job: {low_during_critical}")
    assert len({r["pid"] for r in runs}) == 2
    for pid, count in low_during_critical.items():
        # Only the few low jobs a worker held when it started may run before critical ones.
        assert count <= 8, f"worker {pid} started {count} low jobs while critical ones waited"


def low_jobs_started_while_critical_ran(runs: list[dict[str, object]]) -> dict[int, int]:
    by_pid: dict[int, list[dict[str, object]]] = defaultdict(list)
    for run in runs:
        by_pid[run["pid"]].append(run)  # type: ignore[index]
    result = {}
    for pid, own in by_pid.items():
        own.sort(key=lambda run: run["t"])  # type: ignore[arg-type,return-value]
        critical = [i for i, run in enumerate(own) if run["queue"] == "critical"]
        window = own[critical[0] : critical[-1] + 1] if critical else []
        result[pid] = sum(1 for run in window if run["queue"] == "low")
    return result


def test_kill_9_of_a_worker_mid_run_loses_no_job(app: App, tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    enqueued = set(app.enqueue_many([app.jobs["slow"].call(n) for n in range(2_000)]))
    env = settings_env(app.settings, record)
    victim = start_worker_process(env, tmp_path / "victim.log", "--concurrency", "8")
    survivor = start_worker_process(env, tmp_path / "survivor.log", "--concurrency", "8")
    try:
        wait_until(lambda: len(started(record)) >= 500, 120)
        victim.kill()  # SIGKILL: no goodbye, its unacked jobs must come back
        victim.wait(30)
        finished = lambda: {r["id"] for r in ended(record)}  # noqa: E731
        wait_until(lambda: finished() >= enqueued, 300, interval=1)
    finally:
        stop_process(survivor)
        if victim.poll() is None:
            victim.kill()
    runs = Counter(r["id"] for r in ended(record))
    ran_twice = sum(1 for count in runs.values() if count > 1)
    print(f"kill -9 mid-run: {len(runs)} jobs completed, {ran_twice} of them ran twice")
    assert set(runs) == enqueued


def ended(record: Path) -> list[dict[str, object]]:
    from tests.integration.helpers import records

    return [r for r in records(record) if r["event"] == "end"]


def test_sigterm_lets_running_jobs_finish_and_exits_cleanly(app: App, tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    env = settings_env(app.settings, record)
    log = tmp_path / "worker.log"
    worker = start_worker_process(env, log, "--concurrency", "4")
    try:
        app.enqueue_many([app.jobs["sync_overlap"].call() for _ in range(4)])
        wait_until(lambda: len(started(record)) == 4, 60)
    finally:
        code = stop_process(worker)
    assert code == 0
    stderr = log.read_text()
    assert "worker stopped" in stderr
    assert "done=4" in stderr


def test_connection_options_before_the_command_reach_the_worker(app: App, tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    # No PULSARJOBS_* settings in the environment: the worker only knows the options.
    env = {**without_settings(os.environ), "PULSARJOBS_TEST_RECORD": str(record)}
    options = [
        "--service-url", app.settings.service_url,
        "--admin-url", app.settings.admin_url,
        "--namespace", app.settings.namespace,
    ]  # fmt: skip
    command = [sys.executable, "-m", "pulsarjobs", *options, "worker", "tests.apps.pipeline:app"]
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        worker = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        app.jobs["slow"].enqueue(1)
        wait_until(lambda: len(ended(record)) == 1, 60)
    finally:
        stop_process(worker)


def without_settings(environment: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in environment.items() if not key.startswith("PULSARJOBS")}


def start_in_own_group(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`pulsarjobs worker` as a terminal's foreground job: a process group of its own, which a
    Ctrl-C signals whole."""
    command = [sys.executable, "-m", "pulsarjobs", "worker", "tests.apps.pipeline:app", *args]
    with log.open("ab") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


# Signals sent to the whole process group: each process gets one, and the supervisor forwards
# it again (as SIGTERM).
GROUP_SIGNALS = [
    pytest.param(signal.SIGINT, id="ctrl-c"),  # what a terminal sends on Ctrl-C
    pytest.param(signal.SIGTERM, id="systemd"),  # systemd's default KillMode=control-group
]


@pytest.mark.parametrize("signum", GROUP_SIGNALS)
def test_a_signal_to_the_whole_group_of_processes_lets_running_jobs_finish(
    app: App, tmp_path: Path, signum: signal.Signals
) -> None:
    record = tmp_path / "record.jsonl"
    log = tmp_path / "worker.log"
    group = start_in_own_group(settings_env(app.settings, record), log, "--processes", "2")
    try:
        app.enqueue_many([app.jobs["hold"].call(3.0) for _ in range(4)])
        wait_until(lambda: len(started(record)) == 4, 120)
        os.killpg(group.pid, signum)
        code = group.wait(60)
    finally:
        if group.poll() is None:
            os.killpg(group.pid, signal.SIGKILL)
            group.wait()
    assert code == 0, log.read_text()[-3000:]
    assert len(ended(record)) == 4, f"{signum.name} to the group aborted running jobs"
    assert "second signal" not in log.read_text()


def supervise(env: dict[str, str], app_reference: str) -> tuple[int, str]:
    """`pulsarjobs worker APP --processes 2` until it exits by itself (30 s at most): its exit
    code and output."""
    command = [sys.executable, "-m", "pulsarjobs", "worker", app_reference, "--processes", "2"]
    group = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)  # fmt: skip
    try:
        output, _ = group.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(group.pid, signal.SIGKILL)  # the supervisor and its children
        output, _ = group.communicate()
        raise AssertionError(f"still restarting after 30 s: {output[-2000:]}") from None
    return group.returncode, output


def test_an_app_that_cannot_be_loaded_stops_a_group_of_processes_with_one_line(
    app: App, tmp_path: Path
) -> None:
    env = settings_env(app.settings, tmp_path / "record.jsonl")
    code, output = supervise(env, "no_such_module:app")
    assert code == 1, output
    assert output.count("cannot import 'no_such_module'") == 1, output
    assert "Traceback" not in output


def test_worker_processes_that_cannot_load_the_app_are_not_restarted(
    app: App, tmp_path: Path
) -> None:
    env = settings_env(app.settings, tmp_path / "record.jsonl")
    code, output = supervise(env, "tests.apps.fails_in_children:app")
    assert code == 1, output
    assert "cannot be imported in a worker process" in output
    assert "Traceback" not in output and "starting another" not in output


def test_a_worker_without_queues_serves_every_queue_the_app_declares(
    app: App, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    log = tmp_path / "worker.log"
    worker = start_worker_process(settings_env(app.settings, record), log)  # no --queues
    try:
        job_ids = [app.jobs[f"{queue}_job"].enqueue(1) for queue in ("critical", "low")]
        wait_until(lambda: sorted(r["id"] for r in started(record)) == sorted(job_ids), 60)
    finally:
        assert stop_process(worker) == 0
    started_line = next(line for line in log.read_text().splitlines() if "worker started" in line)
    for queue in ("critical", "default", "low", "ticks"):
        assert f"'{queue}'" in started_line, started_line


def test_workers_stopped_by_command_are_not_restarted_and_their_group_exits_0(
    app: App, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    group = start_worker_process(settings_env(app.settings, tmp_path / "r.jsonl"), log,
                                 "--processes", "2")  # fmt: skip
    try:
        with Inspector(app.settings) as inspector:
            wait_until(lambda: len(inspector.workers()) == 2, 60, interval=0.5)
            names = [worker.worker for worker in inspector.workers()]
        for name in names:
            told = cli(app.settings, "workers", "stop", name)
            assert told.exit_code == 0, told.output
        code = group.wait(60)
    finally:
        if group.poll() is None:
            stop_process(group)  # its children too
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "died" not in text and "starting another" not in text, text[-3000:]


def test_worker_processes_stop_when_their_supervisor_is_killed(app: App, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    group = start_in_own_group(settings_env(app.settings, tmp_path / "r.jsonl"), log,
                               "--processes", "2")  # fmt: skip
    try:
        with Inspector(app.settings) as inspector:
            wait_until(lambda: len(inspector.workers()) == 2, 60, interval=0.5)
        group.kill()  # kill -9 of the supervisor alone: its children are orphans now
        group.wait()
        with Inspector(app.settings) as inspector:
            wait_until(lambda: not inspector.workers(), 60, interval=0.5)
        # A worker leaves the list as it closes its consumers, a moment before it logs its end.
        wait_until(lambda: log.read_text().count("worker stopped") == 2, 60, interval=0.5)
    finally:
        os.killpg(group.pid, signal.SIGKILL)  # whatever is left of the group
