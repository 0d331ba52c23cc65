"""The local cluster's configs carry pulsarjobs' settings, and its commands speak plainly."""

from __future__ import annotations

import stat
from pathlib import Path

from typer.testing import CliRunner

from pulsarjobs.broker.cluster import LocalCluster
from pulsarjobs.broker.cluster_ports import ClusterPorts
from pulsarjobs.broker.templates import properties
from pulsarjobs.cli.main import app
from pulsarjobs.transport.access import role_of


def written(tmp_path: Path) -> LocalCluster:
    cluster = LocalCluster(data_dir=tmp_path, ports=ClusterPorts.starting_at(40000))
    cluster._write_configs()
    return cluster


def conf(cluster: LocalCluster, name: str) -> dict[str, str]:
    lines = cluster.nodes[name].process.conf_file.read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return dict(pairs)


def test_brokers_get_the_job_settings_and_two_copies_of_each_entry(tmp_path: Path) -> None:
    cluster = written(tmp_path)
    for name, port in (("broker-1", 40004), ("broker-2", 40005)):
        broker = conf(cluster, name)
        assert broker.items() >= properties("jobs-broker.conf").items()
        assert broker["brokerServicePort"] == str(port)
        assert broker["metadataStoreUrl"] == "zk:127.0.0.1:40000"
        assert broker["managedLedgerDefaultAckQuorum"] == "2"
        assert broker["metadataStoreSessionTimeoutMillis"] == "10000"


def test_bookies_and_zookeeper_stay_on_their_own_ports(tmp_path: Path) -> None:
    cluster = written(tmp_path)
    for name, port in (("bookie-1", 40001), ("bookie-2", 40002), ("bookie-3", 40003)):
        bookie = conf(cluster, name)
        assert bookie.items() >= properties("jobs-bookie.conf").items()
        assert bookie["bookiePort"] == str(port)
        assert bookie["allowLoopback"] == "true"
    zookeeper = conf(cluster, "zookeeper")
    assert zookeeper["clientPort"] == "40000"
    assert zookeeper["admin.enableServer"] == "false"  # else it takes port 8080


def test_a_restart_keeps_the_ports_and_session_timeout(tmp_path: Path) -> None:
    LocalCluster(
        tmp_path, ClusterPorts.starting_at(40000), session_timeout_ms=20_000
    )._write_configs()
    again = LocalCluster.at(tmp_path)
    assert again.ports == ClusterPorts.starting_at(40000)
    assert again.session_timeout_ms == 20_000
    assert again.service_url == "pulsar://127.0.0.1:40004,127.0.0.1:40005"
    assert again.node_serving("pulsar://127.0.0.1:40005").name == "broker-2"


def test_status_of_a_cluster_never_started_says_stopped(tmp_path: Path) -> None:
    done = CliRunner().invoke(app, ["cluster", "status", "--data-dir", str(tmp_path)])
    assert done.exit_code == 1
    assert done.stdout.startswith("stopped")


def test_logs_of_an_unknown_node_name_the_nodes(tmp_path: Path) -> None:
    done = CliRunner().invoke(app, ["cluster", "logs", "broker-9", "--data-dir", str(tmp_path)])
    assert done.exit_code == 1
    assert "broker-1" in done.output


def test_a_secured_cluster_has_brokers_that_serve_tls_only_and_check_tokens(
    tmp_path: Path,
) -> None:
    LocalCluster(tmp_path, ClusterPorts.starting_at(40000), auth=True, tls=True)._write_configs()
    cluster = LocalCluster.at(tmp_path)  # the options are kept for later commands
    for name, (port, web) in (("broker-1", (40004, 40006)), ("broker-2", (40005, 40007))):
        broker = conf(cluster, name)
        assert (broker["brokerServicePort"], broker["webServicePort"]) == ("", "")
        assert broker["brokerServicePortTls"] == str(port)
        assert broker["webServicePortTls"] == str(web)
        assert broker["authorizationEnabled"] == "true"
        assert broker["brokerClientTlsEnabled"] == "true"  # the brokers talk to each other
        assert broker["brokerClientAuthenticationParameters"] == (
            f"token:{cluster.security.admin_token()}"
        )
        assert stat.S_IMODE(cluster.nodes[name].process.conf_file.stat().st_mode) == 0o600
    assert "authenticationEnabled" not in conf(cluster, "bookie-1")  # plain, on loopback
    assert cluster.service_url == "pulsar+ssl://127.0.0.1:40004,127.0.0.1:40005"
    assert cluster.nodes["broker-2"].admin_url == "https://127.0.0.1:40007"
    client = cluster.client_settings()
    assert client.tls_trust_file == str(cluster.security.ca_file)
    assert client.token is not None and role_of(client.token) == "admin"

    done = CliRunner().invoke(app, ["cluster", "token", "worker", "--data-dir", str(tmp_path)])
    assert done.exit_code == 0
    assert role_of(done.stdout.strip()) == "worker"
    assert done.stdout.strip() == cluster.security.token("worker")
