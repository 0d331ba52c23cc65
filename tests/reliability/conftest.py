"""What the reliability scenarios share: their size, a namespace and a record each, worker
processes on the scenario's jobs, the dead letters, and the summary table of the session."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from pulsarjobs import App, JobCall, Settings
from pulsarjobs.broker.process import free_port
from pulsarjobs.transport.topics import topics_for
from tests.conftest import BrokerUnderTest, launched_broker
from tests.integration.helpers import (
    fresh_settings,
    read_topic,
    settings_env,
    start_worker_process,
)
from tests.reliability import report
from tests.reliability.app import FIX_VARIABLE, make_app
from tests.reliability.proxy import Proxy
from tests.reliability.recorder import DIRECTORY_VARIABLE, Recorder, RunRecord, read_record

APP = "tests.reliability.app:app"
PROXY_HOST = "127.0.0.2"  # where the suite's own broker is reached, through the proxy


@dataclass
class Scenario:
    """One scenario's namespace, app, record and worker processes."""

    name: str
    long: bool
    broker: BrokerUnderTest
    settings: Settings
    app: App
    directory: Path  # the record and the workers' logs
    recorder: Recorder
    started: float = field(default_factory=time.monotonic)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def size(self) -> str:
        return "long" if self.long else "short"

    def sized(self, short: int, long: int) -> int:
        return long if self.long else short

    @property
    def env(self) -> dict[str, str]:
        env = settings_env(self.settings, self.directory / "unused.jsonl")
        env[DIRECTORY_VARIABLE] = str(self.recorder.directory)
        env[FIX_VARIABLE] = str(self.fix)
        return env

    @property
    def fix(self) -> Path:
        """Create this file to make the broken jobs work."""
        return self.directory / "fixed"

    def enqueue(
        self, calls: list[JobCall], batch: int = 1_000, at: datetime | None = None
    ) -> list[str]:
        """Enqueue in groups of `batch` (1: one by one), due `at` (None: now), each recorded
        once its enqueue returned."""
        ids: list[str] = []
        for start in range(0, len(calls), batch):
            stored = self.app.enqueue_many(calls[start : start + batch], at=at)
            self.recorder.enqueued(stored)
            ids.extend(stored)
        return ids

    def start_worker(self, *args: str) -> subprocess.Popen[bytes]:
        log = self.directory / f"worker-{len(self.workers)}.log"
        process = start_worker_process(self.env, log, "--log-level", "warning", *args, app=APP)
        self.workers.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.directory.glob("*.log")))

    def dead_letters(self, queue: str = "default") -> dict[str, str]:
        """The reason of each dead letter, by job id."""
        messages = read_topic(self.settings, topics_for(self.settings, queue).dead)
        properties = [message.properties() for message in messages]
        return {p.get("pulsarjobs-job-id", ""): p.get("pulsarjobs-reason", "") for p in properties}

    def enqueued(self) -> set[str]:
        """The jobs whose enqueue returned."""
        return set(read_record(self.recorder.directory)[0])

    def completed(self) -> set[str]:
        return {run.job_id for run in read_record(self.recorder.directory)[1]}

    def check(
        self,
        dead_letters: dict[str, str] | None = None,
        runs: list[RunRecord] | None = None,
        notes: str = "",
    ) -> report.Report:
        """The report on the record (or on `runs` in its place: the same runs, as the scenario
        knows them better)."""
        enqueued, recorded = read_record(self.recorder.directory)
        letters = self.dead_letters() if dead_letters is None else dead_letters
        seconds = time.monotonic() - self.started
        runs = recorded if runs is None else runs
        return report.check(self.name, self.size, enqueued, runs, letters, seconds, notes)

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


LONG_TIMEOUT = 3 * 3600  # seconds a full-size scenario may take (the default is for CI sizes)


def is_long(config: pytest.Config) -> bool:
    return bool(config.getoption("--long")) or bool(os.environ.get("PULSARJOBS_RELIABILITY_LONG"))


@pytest.fixture
def long_run(request: pytest.FixtureRequest) -> bool:
    return is_long(request.config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if is_long(config):
        for item in items:
            if item.get_closest_marker("reliability"):
                item.add_marker(pytest.mark.timeout(LONG_TIMEOUT))


@pytest.fixture
def scenario(
    request: pytest.FixtureRequest, broker: BrokerUnderTest, tmp_path: Path, long_run: bool
) -> Iterator[Scenario]:
    """A scenario on the session's broker, which it must leave running."""
    with open_scenario(request, broker, tmp_path, long_run) as created:
        yield created


@pytest.fixture(scope="session")
def own_broker_and_proxy() -> Iterator[tuple[BrokerUnderTest, Proxy]]:
    """A broker of the suite's own, on free ports, for the scenarios that kill, pause or
    restart it, stopped when the session ends whatever happened; and the proxy every client
    byte to it crosses, which a scenario can cut.

    The broker listens on 127.0.0.1 and advertises 127.0.0.2, where the proxies listen on the
    same ports: lookups and data alike go through the proxy (the web port's is never cut: the
    broker calls its own advertised admin URL)."""
    port, web_port = free_port(), free_port()
    with (
        Proxy((PROXY_HOST, port), ("127.0.0.1", port)) as proxy,
        Proxy((PROXY_HOST, web_port), ("127.0.0.1", web_port)),
    ):
        settings = {"advertisedAddress": PROXY_HOST}
        for broker in launched_broker(settings=settings, broker_port=port, web_port=web_port):
            yield dataclasses.replace(broker, service_url=f"pulsar://{PROXY_HOST}:{port}"), proxy


@pytest.fixture
def own_broker(own_broker_and_proxy: tuple[BrokerUnderTest, Proxy]) -> BrokerUnderTest:
    return own_broker_and_proxy[0]


@pytest.fixture
def proxy(own_broker_and_proxy: tuple[BrokerUnderTest, Proxy]) -> Iterator[Proxy]:
    """The proxy in front of the suite's own broker: forwarding again after the test."""
    yield own_broker_and_proxy[1]
    own_broker_and_proxy[1].reset()


@pytest.fixture
def own_scenario(
    request: pytest.FixtureRequest, own_broker: BrokerUnderTest, tmp_path: Path, long_run: bool
) -> Iterator[Scenario]:
    """A scenario on the suite's own broker: `scenario.broker` may be killed and restarted."""
    with open_scenario(request, own_broker, tmp_path, long_run) as created:
        yield created


@contextmanager
def open_scenario(
    request: pytest.FixtureRequest, broker: BrokerUnderTest, tmp_path: Path, long_run: bool
) -> Iterator[Scenario]:
    records = tmp_path / "record"
    records.mkdir()
    settings = fresh_settings(broker)
    app = make_app(settings)
    name = request.node.name.removeprefix("test_")
    created = Scenario(name, long_run, broker, settings, app, tmp_path, Recorder(records))
    try:
        yield created
    finally:
        created.stop_workers()
        app.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if report.REPORTS:
        terminalreporter.section("reliability")
        for made in report.REPORTS:
            terminalreporter.write_line(made.line())
