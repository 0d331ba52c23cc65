"""A local Apache Pulsar standalone, run on the JVM from the cached jars.

One LocalBroker is one data directory: its config, pid file, log and stored messages live there,
so several brokers (a developer's and a test run's) can run side by side on other ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pulsarjobs.broker.jars import PULSAR_VERSION, classpath
from pulsarjobs.broker.java import Jdk, find_jdk
from pulsarjobs.broker.process import (
    JavaProcess,
    State,
    java_command,
    port_in_use,
    startup_failure,
)
from pulsarjobs.broker.security import BrokerSecurity
from pulsarjobs.broker.templates import merged, render
from pulsarjobs.errors import BrokerError
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin

MAIN_CLASS = "org.apache.pulsar.PulsarStandaloneStarter"
DEFAULT_NAMESPACES = ("public/pulsarjobs",)
PORTS_FILE = "ports.json"  # the ports and security options of the last start
LOG_CONFIG = "log4j2.xml"
LOOP_SIGNATURE = "was invalidated. state Valid"  # ResourceLockImpl, on every turn of the loop

Progress = Callable[[str], None]


def default_data_dir() -> Path:
    if explicit := os.environ.get("PULSARJOBS_BROKER_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "pulsarjobs" / "standalone"


@dataclass(frozen=True)
class Status:
    state: State
    pid: int | None
    service_url: str
    admin_url: str


@dataclass
class LocalBroker:
    data_dir: Path = field(default_factory=default_data_dir)
    broker_port: int = 6650
    web_port: int = 8080
    bookie_port: int = 3181
    version: str = PULSAR_VERSION
    heap: str = "768m"
    settings: Mapping[str, str] = field(default_factory=dict)
    # Fsync the bookie's journal before a write is acknowledged: acknowledged jobs survive a
    # power cut too, not only a killed process, at a cost in enqueue speed (docs/broker.md).
    journal_sync: bool = False
    namespaces: Sequence[str] = DEFAULT_NAMESPACES
    auth: bool = False  # token authentication and authorization (see security.py)
    tls: bool = False  # TLS on both ports, plain text off
    process: JavaProcess = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.process = JavaProcess(
            MAIN_CLASS,
            conf_file=self.data_dir / "conf" / "standalone.conf",
            pid_file=self.data_dir / "broker.pid",
            log_file=self.data_dir / "logs" / "broker.log",
        )

    @classmethod
    def at(
        cls,
        data_dir: Path | None = None,
        broker_port: int | None = None,
        web_port: int | None = None,
        bookie_port: int | None = None,
        auth: bool | None = None,
        tls: bool | None = None,
    ) -> LocalBroker:
        """The broker of a data directory, on the ports and with the security options it was
        last started with unless given."""
        broker = cls(data_dir=data_dir or default_data_dir())
        saved: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads((broker.data_dir / PORTS_FILE).read_text())
        broker.broker_port = broker_port or saved.get("broker_port", broker.broker_port)
        broker.web_port = web_port or saved.get("web_port", broker.web_port)
        broker.bookie_port = bookie_port or saved.get("bookie_port", broker.bookie_port)
        broker.auth = bool(saved.get("auth", False)) if auth is None else auth
        broker.tls = bool(saved.get("tls", False)) if tls is None else tls
        return broker

    @property
    def service_url(self) -> str:
        return self.security.service_url([self.broker_port])

    @property
    def admin_url(self) -> str:
        return self.security.admin_url(self.web_port)

    @property
    def security(self) -> BrokerSecurity:
        return BrokerSecurity(self.data_dir / "security", auth=self.auth, tls=self.tls)

    def client_settings(self) -> Settings:
        """How a client reaches this broker as its super-user (the admin token, the CA)."""
        return self.security.client_settings(self.service_url, self.admin_url)

    @property
    def pid_file(self) -> Path:
        return self.process.pid_file

    @property
    def log_file(self) -> Path:
        return self.process.log_file

    @property
    def conf_file(self) -> Path:
        return self.process.conf_file

    def status(self) -> Status:
        return Status(self.process.state(), self.process.pid, self.service_url, self.admin_url)

    def start(self, progress: Progress | None = None, timeout: float = 180.0) -> Status:
        """Start the broker and wait until it serves; harmless when it already runs."""
        say = progress or (lambda _: None)
        current = self.status()
        if current.state == "running":
            return current
        jdk = find_jdk()
        self.pid_file.unlink(missing_ok=True)
        self._check_ports_free()
        jars = classpath(self.version, say)
        self._write_config()
        say(f"starting Pulsar {self.version} on Java {jdk.version_text}")
        log_offset = self.process.log_size()
        self._spawn(jdk, jars)
        self._wait_until_serving(say, timeout)
        if registration_loop(self.process.log_since(log_offset)):
            # A registration left by a broker that was killed can send Pulsar's bookie lock
            # into an endless delete/re-create loop (a core at 100%, gigabytes of log). A
            # clean stop removes the registration; the next start is a normal one.
            say("the bookie registration is looping (left by an unclean stop); restarting once")
            self.stop()
            self._spawn(jdk, jars)
            self._wait_until_serving(say, timeout)
        return self.status()

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the broker this data directory started; True when one was running."""
        return self.process.stop(timeout)

    def log_tail(self, lines: int = 50) -> list[str]:
        return self.process.log_tail(lines)

    def _check_ports_free(self) -> None:
        for port, flag in (
            (self.broker_port, "--port"),
            (self.web_port, "--web-port"),
            (self.bookie_port, "--bookie-port"),
        ):
            if port_in_use(port):
                raise BrokerError(
                    f"Port {port} on 127.0.0.1 is in use by another process: stop it, "
                    f"or choose another port with {flag}."
                )

    def _write_config(self) -> None:
        self.conf_file.parent.mkdir(parents=True, exist_ok=True)
        standalone = render(
            "standalone.conf", broker_port=str(self.broker_port), web_port=str(self.web_port)
        )
        self.security.prepare()
        sync = "# --journal-sync\njournalSyncData=true" if self.journal_sync else ""
        given = "".join(f"{key}={value}\n" for key, value in self.settings.items())
        conf = merged(
            standalone,
            render("jobs-broker.conf"),
            render("jobs-bookie.conf"),
            self.security.broker_config(self.broker_port, self.web_port),
            sync,
            "# Given on the command line\n" + given if given else "",
        )
        self.conf_file.write_text(conf)
        self.conf_file.chmod(0o600)  # it holds the token secret
        saved: dict[str, int | bool] = {"broker_port": self.broker_port, "web_port": self.web_port}
        saved |= {"bookie_port": self.bookie_port, "auth": self.auth, "tls": self.tls}
        (self.data_dir / PORTS_FILE).write_text(json.dumps(saved))
        write_log_config(self.conf_file.parent)

    def _spawn(self, jdk: Jdk, jars: str) -> None:
        arguments = [
            "--config", str(self.conf_file),
            "--no-functions-worker", "--no-stream-storage",
            "--metadata-dir", str(self.data_dir / "metadata"),
            "--bookkeeper-dir", str(self.data_dir / "bookkeeper"),
            "--bookkeeper-port", str(self.bookie_port),
        ]  # fmt: skip
        log_config = self.conf_file.parent / LOG_CONFIG
        command = java_command(
            jdk, jars, MAIN_CLASS, arguments, heap=self.heap, log_config=log_config
        )
        self.process.spawn(command, cwd=self.data_dir)

    def _wait_until_serving(self, say: Progress, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        client = self.client_settings()
        with Admin.of(client, timeout=5.0) as admin:
            while not admin.healthy():
                if self.process.exited():
                    raise BrokerError(
                        f"Pulsar exited while starting: {startup_failure(self.log_tail(400))} "
                        f"(fix the setting it names; full log: {self.log_file})."
                    )
                if time.monotonic() > deadline:
                    self.stop()
                    raise BrokerError(
                        f"Pulsar did not become healthy within {timeout:.0f} s "
                        f"(see {self.log_file})."
                    )
                say(f"waiting for Pulsar to serve ({time.monotonic() - started:.0f} s)")
                time.sleep(0.25)
            for namespace in self.namespaces:
                admin.ensure_namespace(namespace)
        say("checking that a message goes through")
        while True:  # after a kill -9 the broker can be healthy before its bookie takes writes
            try:
                probe(client, f"persistent://{self.namespaces[0]}/pulsarjobs-probe")
                return
            except BrokerError:
                if time.monotonic() > deadline or self.process.exited():
                    raise
                say(f"waiting for a message to go through ({time.monotonic() - started:.0f} s)")


def write_log_config(conf_dir: Path) -> None:
    """The log4j2 configuration every JVM of the launcher reads (level from the environment)."""
    level = os.environ.get("PULSARJOBS_BROKER_LOG_LEVEL", "info")
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / LOG_CONFIG).write_text(render("log4j2.xml", log_level=level))


def registration_loop(log: str, threshold: int = 50) -> bool:
    """True when the log shows the bookie's registration lock invalidated over and over."""
    lines = (line for line in log.splitlines() if LOOP_SIGNATURE in line)
    return sum(1 for line in lines if "/ledgers/available/" in line) >= threshold


def probe(settings: Settings, topic: str, timeout_ms: int = 10_000) -> None:
    """Send one message and read it back: the broker really serves clients."""
    import pulsar

    from pulsarjobs.transport.connection import client_options

    client = pulsar.Client(
        settings.service_url,
        operation_timeout_seconds=10,
        logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn),
        **client_options(settings),
    )
    try:
        consumer = client.subscribe(topic, "pulsarjobs-probe")
        producer = client.create_producer(topic)
        token = uuid.uuid4().bytes
        producer.send(token)
        while True:
            message = consumer.receive(timeout_millis=timeout_ms)
            consumer.acknowledge(message)
            if message.data() == token:
                return
    except Exception as exc:
        raise BrokerError(f"Pulsar is up but a test message did not go through: {exc}") from exc
    finally:
        client.close()
