"""The Pulsar client's own lines come out through pulsarjobs' logs: JSON stays JSON, and an
outage is one warning, then one line when the broker is back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, settings_env, wait_until

pytestmark = pytest.mark.broker


def json_lines(*paths: Path) -> list[dict[str, Any]]:
    """Every line of the files as JSON; fails naming the first line that is not."""
    events = []
    for path in paths:
        for line in path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                pytest.fail(f"not a JSON line in {path.name}: {line!r}")
    return events


def test_a_json_worker_logs_only_json_through_a_broker_restart(
    broker: BrokerUnderTest, tmp_path: Path
) -> None:
    if broker.local is None:
        pytest.skip("restarting needs a broker these tests started")
    settings = fresh_settings(broker)
    # The client's console logger wrote to stdout: neither stream may carry a line not JSON.
    stdout, stderr = tmp_path / "worker.stdout", tmp_path / "worker.stderr"

    def told(event: str) -> bool:
        return any(e.get("event") == event for e in json_lines(stdout, stderr))

    command = [sys.executable, "-m", "pulsarjobs", "worker", "tests.apps.pipeline:app"]
    with stdout.open("w") as out, stderr.open("w") as errors:
        worker = subprocess.Popen(
            [*command, "--log-format", "json"],
            env=settings_env(settings, tmp_path / "record.jsonl"),
            stdout=out,
            stderr=errors,
        )
    try:
        wait_until(lambda: told("worker started"), 30)
        broker.local.stop()
        wait_until(lambda: told("cannot reach the Pulsar broker; the client keeps retrying"), 30)
        broker.local.start()
        wait_until(lambda: told("connection to the broker is back"), 90)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    events = json_lines(stdout, stderr)
    address = broker.service_url.removeprefix("pulsar://")
    outage = [e for e in events if e.get("broker") == address]
    assert [(e["level"], e["event"]) for e in outage] == [
        ("warning", "cannot reach the Pulsar broker; the client keeps retrying"),
        ("info", "connection to the broker is back"),
    ]
