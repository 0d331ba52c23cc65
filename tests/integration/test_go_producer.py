"""Jobs from another language: the Go example (examples/go) enqueues jobs that a Python worker
runs, now and at a later time, and reads the dead letters a Python worker wrote.

Needs Go (on PATH or in /usr/local/go/bin): skipped without it, failed under CI=true. The build
is cached by Go between runs; the first one downloads the modules (scripts/test begins it
beside the lint and type checks).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pulsarjobs import App
from pulsarjobs.app import JobCall
from tests.conftest import unavailable
from tests.integration.helpers import settings_env, started, wait_until, worker_in_thread

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "go"
pytestmark = pytest.mark.timeout(900)


def find_go() -> str | None:
    return shutil.which("go") or next(
        (path for path in ("/usr/local/go/bin/go",) if os.access(path, os.X_OK)), None
    )


@pytest.fixture(scope="module")
def go_command(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = find_go()
    if go is None:
        unavailable("Go is not installed: the Go producer example cannot be built")
    assert go is not None
    binary = tmp_path_factory.mktemp("go") / "pulsarjobs-go"
    built = subprocess.run(
        [go, "build", "-o", str(binary), "./cmd/pulsarjobs-go"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, f"go build failed:\n{built.stderr}"
    return binary


def run_go(binary: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(binary), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_jobs_enqueued_from_go_run_in_a_python_worker_now_and_later(
    go_command: Path, app: App, record: Path
) -> None:
    env = settings_env(app.settings, record)
    before = time.time()
    now_id = run_go(go_command, env, "enqueue", "default_job", "-args", "[1]").strip()
    later_id = run_go(go_command, env, "enqueue", "default_job", "-args", "[2]", "-in", "3s")
    later_id = later_id.strip()
    with worker_in_thread(app):
        wait_until(lambda: len(started(record, "default_job")) == 2, timeout=60)
    runs = {run["id"]: run for run in started(record, "default_job")}
    assert set(runs) == {now_id, later_id}
    assert runs[later_id]["t"] >= before + 3.0  # never before its time
    assert runs[now_id]["t"] < runs[later_id]["t"]


def test_a_dead_letter_written_by_a_python_worker_decodes_in_go(
    go_command: Path, app: App, record: Path
) -> None:
    env = settings_env(app.settings, record)
    job_id = app.enqueue(JobCall("always_fails", ("the printer is on fire",)))
    letters: list[dict[str, object]] = []

    def dead_letter_read() -> bool:
        output = run_go(go_command, env, "dead-letters", "-queue", "default", "-wait", "1s")
        letters[:] = [json.loads(line) for line in output.splitlines()]
        return bool(letters)

    with worker_in_thread(app):
        wait_until(dead_letter_read, timeout=90, interval=1.0)
    [letter] = letters
    assert letter["id"] == job_id
    assert letter["type"] == "always_fails"
    assert letter["args"] == ["the printer is on fire"]
    assert letter["attempt"] == 3
    assert letter["error_type"] == "ValueError"
    assert letter["error"] == "the printer is on fire"


def test_the_go_package_reads_and_writes_the_shared_vectors(go_command: Path) -> None:
    go = find_go()
    assert go is not None
    done = subprocess.run(
        [go, "test", "./..."], cwd=EXAMPLE, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
