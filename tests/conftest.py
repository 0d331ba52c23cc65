"""Every integration test runs against a real Apache Pulsar broker.

Where the broker comes from, first match wins:
1. PULSARJOBS_TEST_SERVICE_URL (and PULSARJOBS_TEST_ADMIN_URL): a broker you run;
2. a Docker engine that answers: a Pulsar container, through testcontainers;
3. the project's own launcher: a standalone on free ports in a temporary directory.
A broker the fixture started is stopped when the run ends. The outbox's tests also get a real
PostgreSQL (`postgres`, tests/postgres.py), started once for the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pulsarjobs.broker import PULSAR_VERSION, LocalBroker, LocalCluster
from pulsarjobs.broker.process import free_port
from pulsarjobs.broker.templates import properties
from pulsarjobs.errors import PulsarJobsError
from pulsarjobs.transport.admin import Admin

NAMESPACE = "public/pulsarjobs"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots",
        metavar="DIR",
        default=None,
        help="save the dashboard tests' page pictures here (docs/images for the docs)",
    )
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="reliability scenarios at full size (also: PULSARJOBS_RELIABILITY_LONG=1)",
    )


@dataclass
class BrokerUnderTest:
    service_url: str
    admin_url: str
    local: LocalBroker | None = None

    def restart(self) -> None:
        """Stop and start the broker, keeping its data."""
        if self.local is None:
            pytest.skip("restarting needs a broker these tests started")
        self.local.stop()
        self.local.start()

    def kill_and_restart(self) -> None:
        """kill -9 the broker, as a crash would, and start it again on its data."""
        if self.local is None:
            pytest.skip("killing needs a broker these tests started")
        self.local.process.kill()
        self.local.start()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The broker stopped with SIGSTOP, as a stalled VM or a long GC pause would; SIGCONT
        at the end, whatever happens."""
        pid = self.local.process.pid if self.local is not None else None
        if pid is None:
            pytest.skip("pausing needs a broker these tests started")
        os.killpg(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(pid, signal.SIGCONT)


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerUnderTest]:
    if service_url := os.environ.get("PULSARJOBS_TEST_SERVICE_URL"):
        admin_url = os.environ.get("PULSARJOBS_TEST_ADMIN_URL", "http://127.0.0.1:8080")
        with Admin(admin_url) as admin:
            admin.ensure_namespace(NAMESPACE)
        yield BrokerUnderTest(service_url, admin_url)
    elif docker_answers():
        yield from container_broker()
    else:
        yield from launched_broker(settings=CHECKS_OFTEN)


# The broker expires messages (dead-letter retention by age, kept results) and evicts backlogs
# (retention by size) at these intervals; at their defaults (5 min, 60 s) tests would wait minutes.
CHECKS_OFTEN = {
    "messageExpiryCheckIntervalInMinutes": "1",
    "backlogQuotaCheckIntervalInSeconds": "10",
}


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def launched_broker(
    data_dir: Path | None = None,
    settings: Mapping[str, str] | None = None,
    broker_port: int | None = None,
    web_port: int | None = None,
) -> Iterator[BrokerUnderTest]:
    """A standalone from the launcher on free ports (or those given), in `data_dir` (default: a
    new temporary directory), with extra broker `settings`, discarded at the end."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="pulsarjobs-test-broker-"))
    local = LocalBroker(
        data_dir=data_dir,
        broker_port=broker_port or free_port(),
        web_port=web_port or free_port(),
        bookie_port=free_port(),
        settings=dict(settings or {}),
    )
    try:
        local.start()
    except PulsarJobsError as exc:
        unavailable(f"could not start a local Pulsar: {exc}")
    try:
        yield BrokerUnderTest(local.service_url, local.admin_url, local)
    finally:
        discard(local)
        shutil.rmtree(data_dir, ignore_errors=True)


def discard(local: LocalBroker | LocalCluster) -> None:
    """Kill -9 a broker or cluster whose data is removed next: a graceful stop of the thousands
    of topics the tests leave only costs time (ten seconds for the session's broker)."""
    if isinstance(local, LocalCluster):
        with ThreadPoolExecutor(len(local.nodes)) as killing:  # each waits for its exit
            list(killing.map(local.kill, local.nodes))
    else:
        local.process.kill()


def container_broker() -> Iterator[BrokerUnderTest]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = (
        DockerContainer(f"apachepulsar/pulsar:{PULSAR_VERSION}")
        .with_exposed_ports(6650, 8080)
        .with_command(
            "sh -c 'bin/apply-config-from-env.py conf/standalone.conf && "
            "exec bin/pulsar standalone --no-functions-worker --no-stream-storage'"
        )
    )
    for key, value in properties("jobs-broker.conf").items():  # as the launcher's broker
        container = container.with_env(f"PULSAR_PREFIX_{key}", value)
    with container:
        wait_for_logs(container, "messaging service is ready", timeout=180)
        host = container.get_container_host_ip()
        admin_url = f"http://{host}:{container.get_exposed_port(8080)}"
        with Admin(admin_url) as admin:
            admin.ensure_namespace(NAMESPACE)
        yield BrokerUnderTest(f"pulsar://{host}:{container.get_exposed_port(6650)}", admin_url)


def unavailable(reason: str) -> None:
    """No broker: a failure in CI, where one must always be had; a skip on a laptop."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """The SQLAlchemy URL of a real PostgreSQL (tests/postgres.py), for the whole run."""
    from tests.postgres import launched_postgres

    yield from launched_postgres(unavailable)


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file the test jobs append a line to for each run (see tests/apps/pipeline.py)."""
    path = tmp_path / "record.jsonl"
    monkeypatch.setenv("PULSARJOBS_TEST_RECORD", str(path))
    return path
