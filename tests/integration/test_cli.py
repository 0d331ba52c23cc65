"""The command line as a user meets it: one clear line and a non-zero exit on bad input."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_worker_with_a_bad_queue_list_says_so_in_one_line() -> None:
    done = run("-m", "pulsarjobs", "worker", "tests.apps.pipeline:app", "--queues", "a:1,b")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: queues 'a:1,b': give a weight to every queue or to none"
    ]


def test_worker_with_an_app_that_does_not_exist_says_so_in_one_line() -> None:
    done = run("-m", "pulsarjobs", "worker", "no_such_module:app")
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert "cannot import 'no_such_module'" in done.stderr


def test_worker_with_an_app_whose_module_fails_says_where_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken_jobs.py").write_text("import os\n\nSETTING = os.environ['NOT_SET_HERE']\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("NOT_SET_HERE", None)
    done = run("-m", "pulsarjobs", "worker", "broken_jobs:app", env=env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: importing 'broken_jobs' failed at {tmp_path / 'broken_jobs.py'}:3: KeyError: "
        "'NOT_SET_HERE' (python -c 'import broken_jobs' shows the traceback)"
    ]


def test_worker_whose_metrics_port_is_taken_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for processes in ("1", "2"):  # a worker's port, or its supervisor's
            done = run("-m", "pulsarjobs", "worker", "tests.apps.pipeline:app",
                       "--metrics-port", port, "--processes", processes)  # fmt: skip
            assert done.returncode == 1
            assert done.stderr.strip().splitlines() == [
                f"error: cannot serve metrics on port {port}: Address already in use; "
                "choose another with --metrics-port"
            ]


def test_the_demo_runs_every_example_job_to_its_end(broker: BrokerUnderTest) -> None:
    settings = fresh_settings(broker)
    env = {
        **os.environ,
        "PULSARJOBS_SERVICE_URL": settings.service_url,
        "PULSARJOBS_ADMIN_URL": settings.admin_url,
        "PULSARJOBS_NAMESPACE": settings.namespace,
        "COLUMNS": "200",
    }
    done = run("-m", "examples.demo", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("attempt 1 succeeded") == 2
    assert "attempt 3 succeeded" in done.stdout
    assert "moved to the dead-letter topic" in done.stdout
