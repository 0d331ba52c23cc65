"""The broker under every test really serves, and the launcher behaves as a user expects."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pulsar
import pytest

from pulsarjobs.broker.process import free_port, process_alive
from tests.conftest import BrokerUnderTest


def topic_name(prefix: str) -> str:
    return f"persistent://public/pulsarjobs/{prefix}-{uuid.uuid4().hex[:8]}"


def new_client(broker: BrokerUnderTest) -> pulsar.Client:
    return pulsar.Client(broker.service_url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))


def pulsarjobs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulsarjobs", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_a_message_produced_is_consumed_and_acked(broker: BrokerUnderTest) -> None:
    topic = topic_name("roundtrip")
    client = new_client(broker)
    try:
        consumer = client.subscribe(topic, "s", consumer_type=pulsar.ConsumerType.Shared)
        client.create_producer(topic).send(b"hello")
        message = consumer.receive(timeout_millis=10_000)
        assert message.data() == b"hello"
        consumer.acknowledge(message)
        consumer.close()
        # Acked: a consumer that comes back to the subscription gets nothing more.
        again = client.subscribe(topic, "s", consumer_type=pulsar.ConsumerType.Shared)
        with pytest.raises(pulsar.Timeout):
            again.receive(timeout_millis=1_000)
    finally:
        client.close()


def test_a_delayed_message_is_not_delivered_early(broker: BrokerUnderTest) -> None:
    topic = topic_name("delayed")
    client = new_client(broker)
    try:
        consumer = client.subscribe(topic, "s", consumer_type=pulsar.ConsumerType.Shared)
        sent_at = time.time()
        client.create_producer(topic).send(b"later", deliver_after=timedelta(seconds=2))
        message = consumer.receive(timeout_millis=15_000)
        waited = time.time() - sent_at
        consumer.acknowledge(message)
        print(f"delivered after {waited:.3f} s (lateness {waited - 2:.3f} s)")
        assert message.data() == b"later"
        assert waited >= 2.0
    finally:
        client.close()


def test_start_twice_is_harmless_and_stop_leaves_no_process(tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path / "broker")]
    ports = ["--port", str(free_port()), "--web-port", str(free_port())]
    ports += ["--bookie-port", str(free_port())]
    first = pulsarjobs("broker", "start", *where, *ports)
    assert first.returncode == 0, first.stderr
    pid = int((tmp_path / "broker" / "broker.pid").read_text())
    try:
        second = pulsarjobs("broker", "start", *where)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stderr
        assert f"pid {pid}" in second.stdout
        assert pulsarjobs("broker", "status", *where).returncode == 0
    finally:
        stopped = pulsarjobs("broker", "stop", *where)
    assert stopped.returncode == 0, stopped.stderr
    assert not process_alive(pid)
    status = pulsarjobs("broker", "status", *where)
    assert status.returncode == 1
    assert "stopped" in status.stderr


def test_a_broken_setting_gives_one_line_that_names_it(tmp_path: Path) -> None:
    done = pulsarjobs(
        "broker", "start",
        "--data-dir", str(tmp_path / "broker"),
        "--port", str(free_port()), "--web-port", str(free_port()),
        "--bookie-port", str(free_port()),
        "--set", "brokerServicePort=not-a-port",
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "not-a-port" in lines[0]
    assert "Traceback" not in done.stderr


def test_missing_java_gives_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PULSARJOBS_JAVA_HOME": str(tmp_path / "no-jdk")}
    done = pulsarjobs("broker", "start", "--data-dir", str(tmp_path / "b"), env=env)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert "PULSARJOBS_JAVA_HOME" in done.stderr
    assert "Traceback" not in done.stderr
