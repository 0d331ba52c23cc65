"""Kubernetes' probes on a real worker process's metrics port: /livez fails while its event loop
is wedged and comes back after; /readyz is ready once it takes jobs, and unready as soon as a
SIGTERM asks it to stop, while its running job is still running (before it is handed back, and
named in the log as it is)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from pulsarjobs.app import App
from tests.integration.helpers import (
    settings_env,
    start_pulsarjobs,
    start_worker_process,
    started,
    wait_until,
)
from tests.integration.test_metrics import free_port

WEDGED_AFTER_S = 2


def probe(port: int, path: str) -> tuple[int, str]:
    """The probe's status and text; 0 while nothing answers on the port."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except httpx.HTTPError:
        return 0, ""
    return response.status_code, response.text.strip()


def test_livez_fails_while_the_event_loop_is_wedged_and_comes_back(
    app: App, tmp_path: Path
) -> None:
    record, port = tmp_path / "record.jsonl", free_port()
    env = settings_env(app.settings, record)
    worker = start_worker_process(env, tmp_path / "worker.log", "--metrics-port", str(port),
                                  "--wedged-after", str(WEDGED_AFTER_S))  # fmt: skip
    try:
        wait_until(lambda: probe(port, "/readyz") == (200, "ready: taking jobs"), 60, 0.2)
        assert probe(port, "/livez") == (200, "live")
        app.jobs["wedge"].enqueue(WEDGED_AFTER_S * 4.0)
        wait_until(lambda: probe(port, "/livez")[0] == 503, 60, 0.2)
        assert probe(port, "/livez")[1].startswith("wedged: the event loop has not moved for")
        wait_until(lambda: probe(port, "/livez") == (200, "live"), 60, 0.2)  # it moves again
    finally:
        assert worker.poll() is None or worker.returncode == 0
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    assert probe(port, "/metrics")[0] == 0  # the port is closed with the worker


def test_readyz_turns_unready_on_sigterm_before_the_running_job_is_handed_back(
    app: App, tmp_path: Path
) -> None:
    record, log, port = tmp_path / "record.jsonl", tmp_path / "worker.log", free_port()
    env = settings_env(app.settings, record)
    worker = start_worker_process(env, log, "--metrics-port", str(port),
                                  "--shutdown-timeout", "8")  # fmt: skip
    try:
        wait_until(lambda: probe(port, "/readyz")[0] == 200, 60, 0.2)
        job_id = app.jobs["hold"].enqueue(60.0)
        wait_until(lambda: len(started(record)) == 1, 60, 0.2)
        worker.send_signal(signal.SIGTERM)
        wait_until(lambda: probe(port, "/readyz")[0] == 503, 5, 0.1)
        unready_at = time.monotonic()
        assert probe(port, "/readyz") == (503, "not ready: stopping")
        assert probe(port, "/livez") == (200, "live")  # draining is not wedged
        assert worker.poll() is None and "handed back" not in log.read_text()
        assert worker.wait(60) == 0
        assert time.monotonic() - unready_at > 3  # it was unready well before the job went back
        assert "handed back" in log.read_text()
        assert f"hold {job_id}" in log.read_text()  # the log names the job handed back
    finally:
        if worker.poll() is None:
            worker.kill()


def test_a_groups_supervisor_answers_for_its_processes_and_names_the_wedged_one(
    app: App, tmp_path: Path
) -> None:
    record, port, log = tmp_path / "record.jsonl", free_port(), tmp_path / "group.log"
    env = settings_env(app.settings, record)
    group = start_worker_process(env, log, "--processes", "2", "--metrics-port", str(port),
                                 "--wedged-after", str(WEDGED_AFTER_S))  # fmt: skip

    def state() -> str:
        return (f"probes {probe(port, '/livez')} {probe(port, '/readyz')}, started "
                f"{started(record)}, the group's log:\n{log.read_text()[-3000:]}")  # fmt: skip

    try:
        wait_until(lambda: probe(port, "/readyz") == (200, "ready: taking jobs"), 90, 0.2)
        app.jobs["wedge"].enqueue(WEDGED_AFTER_S * 4.0)
        wait_until(lambda: probe(port, "/livez")[0] == 503, 60, 0.2, explain=state)
        [wedged] = started(record)
        assert probe(port, "/livez")[1].startswith(f"wedged: process {wedged['pid']}'s event loop")
        wait_until(lambda: probe(port, "/livez") == (200, "live"), 60, 0.2)
        group.send_signal(signal.SIGTERM)
        wait_until(lambda: probe(port, "/readyz")[0] == 503, 5, 0.1)
        assert probe(port, "/readyz")[1] == "not ready: stopping"
        assert group.wait(60) == 0
    finally:
        if group.poll() is None:
            group.kill()


def test_two_schedulers_are_ready_one_leading_and_the_other_takes_over_its_stop(
    app: App, tmp_path: Path
) -> None:
    env = settings_env(app.settings, tmp_path / "record.jsonl")
    ports = [free_port(), free_port()]
    args = ("scheduler", "tests.apps.pipeline:app", "--metrics-port")
    schedulers = [
        start_pulsarjobs(env, tmp_path / f"scheduler{n}.log", *args, str(port))
        for n, port in enumerate(ports)
    ]
    try:

        def said() -> list[str]:
            return sorted(probe(port, "/readyz")[1] for port in ports)

        wait_until(lambda: said() == ["ready: leading", "ready: standing by"], 90, 0.2)
        assert [probe(port, "/livez") for port in ports] == [(200, "live")] * 2
        leader = next(
            n for n, port in enumerate(ports) if probe(port, "/readyz")[1].endswith("leading")
        )
        schedulers[leader].send_signal(signal.SIGTERM)
        assert schedulers[leader].wait(60) == 0
        other = ports[1 - leader]
        wait_until(lambda: probe(other, "/readyz") == (200, "ready: leading"), 90, 0.2)
    finally:
        for process in schedulers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
