"""A broker that enforces token authentication, authorization and TLS (the launcher's --auth
--tls, on free ports: its own broker, never the shared one), and end-to-end encrypted jobs.

Every way of being refused is one line naming the problem, from the producer, the worker and
the command line. tests/cluster/test_security.py asks the same of a cluster with --auth --tls.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pulsarjobs.app import JobCall
from pulsarjobs.broker import LocalBroker, LocalCluster
from pulsarjobs.broker.process import free_port
from pulsarjobs.broker.security import BrokerSecurity
from pulsarjobs.errors import AccessDenied, PulsarJobsError
from pulsarjobs.operations.browse import Browser
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import control_topic
from pulsarjobs.worker.worker import Worker
from tests.apps.pipeline import make_app
from tests.conftest import discard, unavailable
from tests.integration.helpers import started, wait_until, worker_in_thread

NAMESPACE = "secured"
pytestmark = pytest.mark.timeout(600)

Secured = LocalBroker | LocalCluster  # both make tokens and give their super-user's settings
S = TypeVar("S", LocalBroker, LocalCluster)


@pytest.fixture(scope="module")
def secured() -> Iterator[LocalBroker]:
    """A standalone with --auth --tls, discarded at the end."""
    data_dir = Path(tempfile.mkdtemp(prefix="pulsarjobs-test-secured-"))
    local = LocalBroker(
        data_dir=data_dir,
        broker_port=free_port(),
        web_port=free_port(),
        bookie_port=free_port(),
        auth=True,
        tls=True,
    )
    yield from started_secured(local)


def started_secured(local: S) -> Iterator[S]:
    """`local` started, with the tests' namespace; discarded at the end."""
    try:
        try:
            local.start()
        except PulsarJobsError as exc:
            unavailable(f"could not start a local Pulsar with --auth --tls: {exc}")
        with Admin.of(local.client_settings()) as admin:
            admin.ensure_namespace(f"public/{NAMESPACE}")
        yield local
    finally:
        discard(local)
        shutil.rmtree(local.data_dir, ignore_errors=True)


def admin_settings(broker: Secured) -> Settings:
    return broker.client_settings().with_changes(namespace=NAMESPACE)


def role_settings(broker: Secured, role: str) -> Settings:
    return admin_settings(broker).with_changes(token=broker.security.token(role))


def environment(settings: Settings, record: Path) -> dict[str, str]:
    """The settings as a user sets them for a command: PULSARJOBS_* variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PULSARJOBS_")}
    env["PULSARJOBS_TEST_RECORD"] = str(record)
    for name in ("service_url", "admin_url", "namespace", "token", "tls_trust_file",
                 "encryption_public_key", "encryption_private_key"):  # fmt: skip
        if (value := getattr(settings, name)) is not None:
            env[f"PULSARJOBS_{name.upper()}"] = value
    return env


def pulsarjobs(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pulsarjobs", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_granted_role_enqueues_and_runs_jobs_over_tls(secured: LocalBroker, record: Path) -> None:
    granted = pulsarjobs(
        environment(admin_settings(secured), record),
        "namespace", "grant", "worker", "--produce", "--consume",
    )  # fmt: skip
    out, err = granted.communicate(timeout=120)
    assert granted.returncode == 0, err
    assert "worker may produce and consume on public/secured" in out

    app = make_app(role_settings(secured, "worker"))
    try:
        with worker_in_thread(app):
            app.enqueue(JobCall("default_job", (1,)))
            wait_until(lambda: len(started(record, "default_job")) == 1, timeout=60)
    finally:
        app.close()


def refused_settings(broker: Secured, problem: str, tmp_path: Path) -> Settings:
    settings = admin_settings(broker)
    if problem == "no token":
        return settings.with_changes(token=None)
    if problem == "wrong token":  # a token signed with another broker's secret
        other = BrokerSecurity(tmp_path / "other", auth=True)
        other.prepare()
        return settings.with_changes(token=other.token("admin"))
    if problem == "no permission":
        return role_settings(broker, "nobody")
    assert problem == "untrusted certificate"
    return settings.with_changes(tls_trust_file=None)  # the system's CAs only


EXPECTED = {
    "no token": "requires a token: set PULSARJOBS_TOKEN",
    "wrong token": "rejected the token",
    "no permission": "does not let role 'nobody'",
    "untrusted certificate": "is not trusted",
}


@pytest.mark.parametrize("problem", list(EXPECTED))
def test_a_refusal_is_one_line_naming_the_problem_everywhere(
    secured: LocalBroker, problem: str, tmp_path: Path, record: Path
) -> None:
    assert_refused_everywhere(refused_settings(secured, problem, tmp_path), problem, record)


def first_contact_pending() -> bool:
    """Whether a first call to the broker still waits inside the client (refusals.py): one left
    there as the interpreter ends aborts the process."""
    return any(
        thread.name == "pulsarjobs-first-contact" and thread.is_alive()
        for thread in threading.enumerate()
    )


def assert_refused_everywhere(settings: Settings, problem: str, record: Path) -> None:
    """The producer, a worker, `pulsarjobs enqueue` and `pulsarjobs worker` each fail with the
    one line EXPECTED names for the problem."""
    expected = EXPECTED[problem]
    env = environment(settings, record)
    # The commands run meanwhile: a missing token costs each of them the client's timeout.
    enqueue = pulsarjobs(env, "enqueue", "default_job", "--args", "[1]")
    worker = pulsarjobs(env, "worker", "tests.apps.pipeline:app")

    # A producer and a worker of their own apps, side by side: each may wait out the timeout.
    producer, consumer = make_app(settings), make_app(settings)
    try:
        with ThreadPoolExecutor(1) as beside:
            working = beside.submit(asyncio.run, Worker(consumer, "default").run_async())
            with pytest.raises(AccessDenied, match=expected) as enqueued:
                producer.enqueue(JobCall("default_job", (1,)))
            assert "\n" not in str(enqueued.value)
            with pytest.raises(AccessDenied, match=expected):
                working.result(timeout=120)
        assert not first_contact_pending()  # each refused call was ended, not left behind
    finally:
        producer.close()
        consumer.close()

    for command in (enqueue, worker):
        _, err = command.communicate(timeout=120)
        assert command.returncode == 1, err
        [line] = error_lines(err)
        assert expected in line


@pytest.fixture(scope="module")
def key_pair() -> Iterator[tuple[str, str]]:
    folder = Path(tempfile.mkdtemp(prefix="pulsarjobs-test-keys-"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public, private = folder / "public.pem", folder / "private.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    yield str(public), str(private)
    shutil.rmtree(folder, ignore_errors=True)


def test_an_encrypted_job_waits_loudly_for_a_worker_with_the_key(
    secured: LocalBroker, key_pair: tuple[str, str], record: Path, tmp_path: Path
) -> None:
    public, private = key_pair
    settings = admin_settings(secured).with_changes(namespace=f"enc{tmp_path.name[-8:]}")
    with Admin.of(settings) as admin:
        admin.ensure_namespace(settings.full_namespace)
    producer = make_app(settings.with_changes(encryption_public_key=public))
    try:
        producer.enqueue(JobCall("default_job", (7,)))
    finally:
        producer.close()

    # A worker without the key: the job is neither run nor dropped, and its log says why.
    keyless = pulsarjobs(environment(settings, record), "worker", "tests.apps.pipeline:app")
    log_lines: list[str] = []
    try:
        assert keyless.stderr is not None
        for line in keyless.stderr:
            log_lines.append(line)
            if "cannot be decrypted" in line:
                break
    finally:
        keyless.terminate()
        keyless.communicate(timeout=60)
    assert any("PULSARJOBS_ENCRYPTION_PRIVATE_KEY" in line for line in log_lines)
    assert started(record) == []

    # A worker with the key runs it.
    worker_app = make_app(settings.with_changes(encryption_private_key=private))
    try:
        with worker_in_thread(worker_app):
            wait_until(lambda: len(started(record, "default_job")) == 1, timeout=60)
    finally:
        worker_app.close()


def test_a_key_file_that_is_missing_is_one_line(secured: LocalBroker, record: Path) -> None:
    settings = admin_settings(secured).with_changes(encryption_private_key="/nonexistent.pem")
    worker = pulsarjobs(environment(settings, record), "worker", "tests.apps.pipeline:app")
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 1
    [line] = error_lines(err)
    assert "PULSARJOBS_ENCRYPTION_PRIVATE_KEY" in line


def test_a_worker_role_may_produce_only_to_its_own_topics(
    secured: LocalBroker, record: Path
) -> None:
    """What docs/security.md tells an operator: consume on the namespace, produce on the
    subscription's retry and dead-letter topics and on the heartbeats; not on the control or
    scheduler topics."""
    settings = admin_settings(secured)
    env = environment(settings, record)
    own = ["critical-pulsarjobs-RETRY", "critical-pulsarjobs-DLQ", "pulsarjobs-workers"]
    for args in (["--consume"], ["--produce", *(f"--topic={name}" for name in own)]):
        granted = pulsarjobs(env, "namespace", "grant", "restricted", *args)
        _, err = granted.communicate(timeout=120)
        assert granted.returncode == 0, err

    restricted = make_app(role_settings(secured, "restricted"))
    producer = make_app(settings)
    try:
        with worker_in_thread(restricted, queues="critical"):
            producer.enqueue(JobCall("critical_job", (1,)))
            wait_until(lambda: len(started(record, "critical_job")) == 1, timeout=60)
        with pytest.raises(AccessDenied, match="does not let role 'restricted'"):
            control = control_topic(restricted.settings)
            restricted.connection.publish(control, b"stop").result(timeout=60)
    finally:
        restricted.close()
        producer.close()


def test_a_job_the_inspector_cannot_decrypt_is_shown_as_such_and_the_rest_reads(
    secured: LocalBroker, key_pair: tuple[str, str], tmp_path: Path
) -> None:
    public, private = key_pair
    settings = admin_settings(secured).with_changes(namespace=f"ins{tmp_path.name[-8:]}")
    with Admin.of(settings) as admin:
        admin.ensure_namespace(settings.full_namespace)
    for producer_settings in (settings.with_changes(encryption_public_key=public), settings):
        producer = make_app(producer_settings)
        try:
            producer.enqueue(JobCall("default_job", (7,)))
        finally:
            producer.close()
    # Without the private key one job is ciphertext, with it both read; the pages work either way.
    with_key = settings.with_changes(encryption_private_key=private)
    for reader_settings, readable in ((settings, 1), (with_key, 2)):
        with Inspector(reader_settings) as inspector:
            stats = inspector.queue("default")
            page = Browser(inspector).waiting("default", None, 25)
        assert stats.waiting == 2
        assert len(page.items) == 2
        assert sum(item.envelope is not None for item in page.items) == readable
        assert all("encrypted" in item.unreadable for item in page.items if item.envelope is None)


def test_revoking_a_role_takes_its_topic_permissions_too_and_permissions_lists_them(
    secured: LocalBroker, record: Path, tmp_path: Path
) -> None:
    settings = admin_settings(secured).with_changes(namespace=f"rev{tmp_path.name[-8:]}")
    with Admin.of(settings) as admin:
        admin.ensure_namespace(settings.full_namespace)
    env = environment(settings, record)

    def run(*args: str) -> str:
        command = pulsarjobs(env, "namespace", *args)
        out, err = command.communicate(timeout=120)
        assert command.returncode == 0, err
        return out

    run("grant", "auditor", "--consume")
    run("grant", "auditor", "--produce", "--topic=reports-pulsarjobs-RETRY")
    listed = run("permissions")
    assert "reports-pulsarjobs-RETRY" in listed and "produce" in listed, listed
    run("revoke", "auditor")
    with Admin.of(settings) as admin:
        assert "auditor" not in admin.permissions(settings.full_namespace)
        topic = f"persistent://{settings.full_namespace}/reports-pulsarjobs-RETRY"
        assert "auditor" not in admin.topic_permissions(topic)
    assert "auditor" not in run("permissions")
