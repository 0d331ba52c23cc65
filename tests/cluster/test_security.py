"""A local cluster started with --auth --tls: both brokers enforce tokens and serve TLS only.

A role with a token and the CA runs jobs of a partitioned queue whose partitions live on both
brokers; a missing or wrong token and a missing trust file are refused with the standalone's
one-line errors (tests/integration/test_security.py). One cluster for the whole module.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsarjobs.broker.cluster import LocalCluster
from pulsarjobs.broker.cluster_ports import ClusterPorts
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import partition_topic, topics_for
from tests.apps.pipeline import make_app
from tests.integration.helpers import start_worker_process, started, stop_process, wait_until
from tests.integration.test_security import (
    admin_settings,
    assert_refused_everywhere,
    environment,
    pulsarjobs,
    refused_settings,
    role_settings,
    started_secured,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

PARTITIONS = 4
JOBS = 40


@pytest.fixture(scope="module")
def secured() -> Iterator[LocalCluster]:
    """A cluster with --auth --tls on free ports, discarded at the end."""
    data_dir = Path(tempfile.mkdtemp(prefix="pulsarjobs-test-secured-cluster-"))
    yield from started_secured(
        LocalCluster(data_dir=data_dir, ports=ClusterPorts.free(), auth=True, tls=True)
    )


def run(env: dict[str, str], *args: str) -> str:
    """What `pulsarjobs ARGS` prints; it must succeed."""
    command = pulsarjobs(env, *args)
    out, err = command.communicate(timeout=120)
    assert command.returncode == 0, err
    return out


def test_the_cluster_reports_its_secure_urls_and_makes_tokens(secured: LocalCluster) -> None:
    env = environment(admin_settings(secured), Path("unused"))
    status = run(env, "cluster", "status", "--data-dir", str(secured.data_dir))
    assert status.startswith("running")
    assert f"PULSARJOBS_SERVICE_URL={secured.service_url}" in status
    assert secured.service_url.startswith("pulsar+ssl://")
    assert f"PULSARJOBS_TLS_TRUST_FILE={secured.security.ca_file}" in status
    assert "pulsarjobs cluster token ROLE" in status

    token = run(env, "cluster", "token", "api", "--data-dir", str(secured.data_dir))
    assert token.strip() == secured.security.token("api")


def test_a_role_with_its_token_runs_a_partitioned_queue_on_both_brokers(
    secured: LocalCluster, record: Path, tmp_path: Path
) -> None:
    env = environment(admin_settings(secured), record)
    run(env, "namespace", "grant", "worker", "--produce", "--consume")

    settings = role_settings(secured, "worker")
    topic = topics_for(settings, "default").jobs
    with Admin.of(admin_settings(secured)) as admin:
        admin.create_topic(topic, PARTITIONS)
        owners = {
            secured.node_serving(admin.owner(partition_topic(topic, n))).name
            for n in range(PARTITIONS)
        }
    assert owners == {"broker-1", "broker-2"}, "the partitions should live on both brokers"

    # The worker reads its token and trust file from the environment, as a user sets them.
    worker = start_worker_process(environment(settings, record), tmp_path / "worker.log")
    app = make_app(settings)
    try:
        job = app.jobs["scheduled"]
        ids = set(app.enqueue_many([job.call(n) for n in range(JOBS)]))
        wait_until(lambda: ids <= {s["id"] for s in started(record)}, timeout=180, interval=0.5)
    finally:
        app.close()
        stop_process(worker)
    with Admin.of(admin_settings(secured)) as admin:
        stored = {
            n: admin.stats(partition_topic(topic, n))["msgInCounter"] for n in range(PARTITIONS)
        }
    assert all(stored.values()), f"jobs went to some partitions only: {stored}"


# "no token" is left to the standalone's test: it is refused as "wrong token" is, after the
# client's whole operation timeout (10 s for each of the producer, the worker and two commands).
@pytest.mark.parametrize("problem", ["wrong token", "untrusted certificate"])
def test_a_refusal_is_the_standalones_one_line(
    secured: LocalCluster, problem: str, tmp_path: Path, record: Path
) -> None:
    assert_refused_everywhere(refused_settings(secured, problem, tmp_path), problem, record)
