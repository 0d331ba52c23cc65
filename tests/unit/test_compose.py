"""compose/ cannot run here (no Docker engine), so its syntax and its promises are checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pulsarjobs.broker import PULSAR_VERSION
from pulsarjobs.broker.cluster import DEFAULT_SESSION_TIMEOUT_MS
from pulsarjobs.broker.templates import properties

COMPOSE = Path(__file__).resolve().parents[2] / "compose"
STANDALONE = COMPOSE / "docker-compose.yml"
CLUSTER = COMPOSE / "cluster.yml"


def services(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return dict(document["services"])


def prefixed(settings: dict[str, str]) -> dict[str, str]:
    """Settings as the Pulsar image's apply-config-from-env.py takes them."""
    return {f"PULSAR_PREFIX_{key}": value for key, value in settings.items()}


@pytest.mark.parametrize("path", [STANDALONE, CLUSTER], ids=lambda path: path.name)
def test_runs_the_same_pulsar_version_as_the_launcher(path: Path) -> None:
    images = {s["image"] for s in services(path).values() if "apachepulsar" in s.get("image", "")}
    assert images == {f"apachepulsar/pulsar:{PULSAR_VERSION}"}


def test_broker_has_a_health_check_and_loopback_ports() -> None:
    pulsar = services(STANDALONE)["pulsar"]
    assert "brokers/health" in " ".join(pulsar["healthcheck"]["test"])
    assert sorted(pulsar["ports"]) == ["127.0.0.1:6650:6650", "127.0.0.1:8080:8080"]


def test_standalone_sets_every_job_setting_to_the_launchers_value() -> None:
    env = services(STANDALONE)["pulsar"]["environment"]
    wanted = prefixed(properties("jobs-broker.conf") | properties("jobs-bookie.conf"))
    assert {key: env.get(key) for key in wanted} == wanted
    assert env["PULSAR_PREFIX_isDelayedDeliveryDeliverAtTimeStrict"] == "true"


def test_cluster_has_three_bookies_two_brokers_and_the_pulsarjobs_services() -> None:
    names = set(services(CLUSTER))
    assert {"zookeeper", "bookie-1", "bookie-2", "bookie-3", "broker-1", "broker-2"} <= names
    assert {"worker", "scheduler", "dashboard"} <= names


def test_cluster_brokers_are_configured_like_the_launchers() -> None:
    template = properties("cluster-broker.conf")
    for name in ("broker-1", "broker-2"):
        env = services(CLUSTER)[name]["environment"]
        wanted = prefixed(properties("jobs-broker.conf"))
        assert {key: env.get(key) for key in wanted} == wanted, name
        for quorum in ("EnsembleSize", "WriteQuorum", "AckQuorum"):
            key = f"managedLedgerDefault{quorum}"
            assert env[key] == template[key] == "2", key
        assert env["metadataStoreSessionTimeoutMillis"] == str(DEFAULT_SESSION_TIMEOUT_MS)
        assert env["advertisedAddress"] == name
        assert "brokers/health" in " ".join(services(CLUSTER)[name]["healthcheck"]["test"])


def test_cluster_bookies_are_configured_like_the_launchers() -> None:
    for name in ("bookie-1", "bookie-2", "bookie-3"):
        env = services(CLUSTER)[name]["environment"]
        wanted = prefixed(properties("jobs-bookie.conf"))
        assert {key: env.get(key) for key in wanted} == wanted, name
        assert env["advertisedAddress"] == name


def test_cluster_clients_know_both_brokers_and_the_dashboard_needs_a_token() -> None:
    all_services = services(CLUSTER)
    for name in ("worker", "scheduler", "dashboard"):
        env = all_services[name]["environment"]
        assert env["PULSARJOBS_SERVICE_URL"] == "pulsar://broker-1:6650,broker-2:6650", name
    dashboard = all_services["dashboard"]
    assert "--host 0.0.0.0 --port 7420" in dashboard["command"]
    assert "PULSARJOBS_DASHBOARD_TOKEN" in dashboard["environment"]
    assert dashboard["ports"] == ["127.0.0.1:7420:7420"]
