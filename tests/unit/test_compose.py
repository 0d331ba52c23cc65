"""compose/ cannot run here (no Docker engine), so its syntax and its promises are checked."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pulsarjobs.broker import PULSAR_VERSION

COMPOSE = Path(__file__).resolve().parents[2] / "compose" / "docker-compose.yml"


def load() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def test_runs_the_same_pulsar_version_as_the_launcher() -> None:
    services = load()["services"]
    images = {service["image"] for service in services.values() if "image" in service}
    assert images == {f"apachepulsar/pulsar:{PULSAR_VERSION}"}


def test_broker_has_a_health_check_and_loopback_ports() -> None:
    pulsar = load()["services"]["pulsar"]
    assert "brokers/health" in " ".join(pulsar["healthcheck"]["test"])
    assert sorted(pulsar["ports"]) == ["127.0.0.1:6650:6650", "127.0.0.1:8080:8080"]


def test_configures_scheduled_jobs_like_the_launcher() -> None:
    env = load()["services"]["pulsar"]["environment"]
    assert env["PULSAR_PREFIX_isDelayedDeliveryDeliverAtTimeStrict"] == "true"
    assert env["PULSAR_PREFIX_brokerDeleteInactiveTopicsEnabled"] == "false"


JOB_SETTINGS = (
    "delayedDeliveryEnabled",
    "delayedDeliveryTickTimeMillis",
    "isDelayedDeliveryDeliverAtTimeStrict",
    "brokerDeleteInactiveTopicsEnabled",
    "acknowledgmentAtBatchIndexLevelEnabled",
    "journalFlushWhenQueueEmpty",
    "managedLedgerNewEntriesCheckDelayInMillis",
)


def test_sets_every_job_setting_to_the_launchers_value() -> None:
    template = resources.files("pulsarjobs.broker") / "templates" / "standalone.conf"
    lines = template.read_text().splitlines()
    launcher = dict(line.split("=", 1) for line in lines if "=" in line and line[0] != "#")
    env = load()["services"]["pulsar"]["environment"]
    for key in JOB_SETTINGS:
        assert env[f"PULSAR_PREFIX_{key}"] == launcher[key], key
