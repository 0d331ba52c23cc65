"""The docs run as written: every Python block of README.md and docs/ runs against a real broker
(a block marked as a fragment is compiled instead, in tests/unit/test_docblocks.py).

Each page runs in a process of its own, as a user's script would (its `App()`, atexit hooks and
signal handlers are a user's), on a namespace of its own, within a time limit. A page with a
`myproject/jobs.py` block has `pulsarjobs worker myproject.jobs:app` running beside it, as its
console lines tell the reader to start one.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import docblocks
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    read_topic,
    settings_env,
    start_worker_process,
    stop_process,
)

pytestmark = pytest.mark.broker

PAGE_TIMEOUT = 60  # seconds; every page runs in a few
WORKER_APP = "myproject.jobs:app"
WARNING = re.compile(r"\[(warning|error|critical) *\]")  # a log line of the console format


RUNNABLE = [
    page for page in docblocks.pages() if any(not b.fragment for b in docblocks.blocks(page))
]


@pytest.mark.parametrize(
    "page", RUNNABLE, ids=lambda page: page.relative_to(docblocks.ROOT).as_posix()
)
def test_every_python_block_of_the_page_runs(
    page: Path, broker: BrokerUnderTest, tmp_path: Path
) -> None:
    docblocks.write_files(docblocks.blocks(page), tmp_path)
    env = settings_env(fresh_settings(broker), tmp_path / "record.jsonl")
    worker = None
    if (tmp_path / "myproject" / "jobs.py").exists():
        # Without --queues, it serves every queue the module's jobs name.
        worker = start_worker_process(
            {**env, "PYTHONPATH": str(tmp_path)}, tmp_path / "worker.log", app=WORKER_APP
        )
    try:
        done = run_page(page, tmp_path, env)
    finally:
        if worker is not None:
            stop_process(worker)
    if done.returncode != 0:
        worker_log = (tmp_path / "worker.log").read_text() if worker is not None else ""
        pytest.fail(
            f"{done.stderr}\n--- the page's output ---\n{done.stdout}"
            + (f"\n--- the worker's log ---\n{worker_log[-4000:]}" if worker_log else ""),
            pytrace=False,
        )
    # A reader who runs the page and sees a warning takes it for a fault.
    warnings = [line for line in (done.stdout + done.stderr).splitlines() if WARNING.search(line)]
    assert not warnings, f"{page.name} ran, and logged:\n" + "\n".join(warnings)


def run_page(page: Path, directory: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    relative = page.relative_to(docblocks.ROOT).as_posix()
    try:
        return subprocess.run(
            [sys.executable, str(Path(docblocks.__file__)), relative],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=PAGE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as late:
        output = late.stdout.decode() if isinstance(late.stdout, bytes) else late.stdout or ""
        running = [line for line in output.splitlines() if line.endswith(": running")]
        last = running[-1].removesuffix(": running") if running else relative
        pytest.fail(f"{last}: this block did not end within {PAGE_TIMEOUT} s", pytrace=False)


@pytest.mark.parametrize(
    ("page", "queue"), [("README.md", "critical"), ("docs/scheduling.md", "default")]
)
def test_a_pages_first_example_saved_as_the_module_its_commands_load_enqueues_nothing_on_import(
    page: str, queue: str, broker: BrokerUnderTest, tmp_path: Path
) -> None:
    # The page's worker (or scheduler) command loads myproject/jobs.py, and its first example is
    # what goes there. Each such process imports it at start, so a job enqueued at import would
    # be enqueued again by every worker and scheduler started.
    first = docblocks.blocks(docblocks.ROOT / page)[0]
    (tmp_path / "myproject").mkdir()
    (tmp_path / "myproject" / "__init__.py").write_text("")
    (tmp_path / "myproject" / "jobs.py").write_text(first.source)
    settings = fresh_settings(broker)
    env = settings_env(settings, tmp_path / "record.jsonl")

    imported = subprocess.run(
        [sys.executable, "-c", "import myproject.jobs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=PAGE_TIMEOUT,
        check=False,
    )

    assert imported.returncode == 0, imported.stderr
    enqueued = read_topic(settings, f"persistent://{settings.full_namespace}/{queue}")
    assert not enqueued, f"importing the module enqueued {len(enqueued)} jobs"
