"""What the pipeline tests share: a namespace each, workers in a thread or a process, records."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pulsar

from pulsarjobs.app import App
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.worker.worker import Worker
from tests.conftest import BrokerUnderTest


def fresh_settings(broker: BrokerUnderTest) -> Settings:
    """A namespace of its own, so that no test sees another's jobs."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    with Admin(broker.admin_url) as admin:
        admin.ensure_namespace(f"public/{namespace}")
    return Settings(service_url=broker.service_url, admin_url=broker.admin_url, namespace=namespace)


def settings_env(settings: Settings, record: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PULSARJOBS_SERVICE_URL": settings.service_url,
        "PULSARJOBS_ADMIN_URL": settings.admin_url,
        "PULSARJOBS_NAMESPACE": settings.namespace,
        "PULSARJOBS_TEST_RECORD": str(record),
    }


@contextmanager
def worker_in_thread(app: App, queues: str = "default", **options: Any) -> Iterator[Worker]:
    worker = Worker(app, queues, **options)
    thread = threading.Thread(target=lambda: asyncio.run(worker.run_async()), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(60)
        assert not thread.is_alive(), "the worker did not stop within 60 s"


def start_worker_process(
    env: dict[str, str], log: Path, *args: str, app: str = "tests.apps.pipeline:app"
) -> subprocess.Popen[bytes]:
    """`pulsarjobs worker` on the test jobs of `app`."""
    return start_pulsarjobs(env, log, "worker", app, *args)


def start_pulsarjobs(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """A `pulsarjobs` command as a user runs it, logging to a file (a pipe nobody reads fills
    up)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pulsarjobs", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM (a graceful stop) and its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout)


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    interval: float = 0.1,
    explain: Callable[[], str] | None = None,
) -> None:
    """Wait for `condition`; a timeout says what `explain` tells of the state then."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            said = f"; {explain()}" if explain is not None else ""
            raise AssertionError(f"condition not met within {timeout} s{said}")
        time.sleep(interval)


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]  # a line being appended right now is read next time
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def started(path: Path, job_type: str | None = None) -> list[dict[str, Any]]:
    return [r for r in records(path) if r["event"] == "start" and job_type in (None, r["type"])]


@contextmanager
def reader_of(settings: Settings, topic: str) -> Iterator[pulsar.Reader]:
    """A reader of a topic from its start, on a client of its own, closed at the end."""
    client = pulsar.Client(
        settings.service_url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn)
    )
    try:
        yield client.create_reader(topic, pulsar.MessageId.earliest)
    finally:
        client.close()


def read_topic(settings: Settings, topic: str) -> list[pulsar.Message]:
    """Every message a topic holds now, from the start, without consuming it. What was sent
    before is there: an enqueue returns once the broker stored the job, and a worker, relay or
    scheduler acknowledges or says it is done only once what it sent is stored. No wait for
    more: a topic that grows each second (cron ticks) is read up to now."""
    messages = []
    with reader_of(settings, topic) as reader:
        while reader.has_message_available():
            messages.append(reader.read_next(timeout_millis=10_000))
    return messages
