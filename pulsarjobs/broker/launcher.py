"""A local Apache Pulsar standalone, run on the JVM from the cached jars.

One LocalBroker is one data directory: its config, pid file, log and stored messages live there,
so several brokers (a developer's and a test run's) can run side by side on other ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pulsarjobs.admin import Admin
from pulsarjobs.broker.jars import PULSAR_VERSION, classpath
from pulsarjobs.broker.java import Jdk, find_jdk
from pulsarjobs.broker.templates import render
from pulsarjobs.errors import BrokerError

MAIN_CLASS = "org.apache.pulsar.PulsarStandaloneStarter"
DEFAULT_NAMESPACES = ("public/pulsarjobs",)
PORTS_FILE = "ports.json"
LOOP_SIGNATURE = "was invalidated. state Valid"  # ResourceLockImpl, on every turn of the loop

# What Pulsar's own launch script opens, so that the broker's metrics need no reflection hacks.
ADD_OPENS = (
    "java.base/java.io",
    "java.base/java.util.zip",
    "java.base/sun.net",
    "java.base/jdk.internal.platform",
    "java.management/sun.management",
    "jdk.management/com.sun.management.internal",
)

State = Literal["running", "stopped", "stale"]
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
    namespaces: Sequence[str] = DEFAULT_NAMESPACES
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def at(
        cls,
        data_dir: Path | None = None,
        broker_port: int | None = None,
        web_port: int | None = None,
        bookie_port: int | None = None,
    ) -> LocalBroker:
        """The broker of a data directory, on the ports it was last started with unless given."""
        broker = cls(data_dir=data_dir or default_data_dir())
        saved: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads((broker.data_dir / PORTS_FILE).read_text())
        broker.broker_port = broker_port or saved.get("broker_port", broker.broker_port)
        broker.web_port = web_port or saved.get("web_port", broker.web_port)
        broker.bookie_port = bookie_port or saved.get("bookie_port", broker.bookie_port)
        return broker

    @property
    def service_url(self) -> str:
        return f"pulsar://127.0.0.1:{self.broker_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "broker.log"

    @property
    def conf_file(self) -> Path:
        return self.data_dir / "conf" / "standalone.conf"

    def status(self) -> Status:
        pid = self._recorded_pid()
        if pid is None:
            state: State = "stopped"
        else:
            state = "running" if self._is_ours(pid) else "stale"
        return Status(state, pid if state == "running" else None, self.service_url, self.admin_url)

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
        log_offset = self._log_size()
        self._spawn(jdk, jars)
        self._wait_until_serving(say, timeout)
        if registration_loop(self._log_since(log_offset)):
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
        pid = self.status().pid
        if pid is None:
            self.pid_file.unlink(missing_ok=True)  # a stale pid file goes too
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_for_exit(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            self._wait_for_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 50) -> list[str]:
        try:
            return self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return []

    def _log_size(self) -> int:
        try:
            return self.log_file.stat().st_size
        except OSError:
            return 0

    def _log_since(self, offset: int, limit: int = 4_000_000) -> str:
        try:
            with self.log_file.open("rb") as log:
                log.seek(offset)
                return log.read(limit).decode(errors="replace")
        except OSError:
            return ""

    def _recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_ours(self, pid: int) -> bool:
        """Alive, and the Pulsar started with this data directory's config (pids get reused)."""
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is None
        command = process_command(pid)
        return MAIN_CLASS in command and str(self.conf_file) in command

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
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        conf = render(
            "standalone.conf", broker_port=str(self.broker_port), web_port=str(self.web_port)
        )
        extra = "".join(f"{key}={value}\n" for key, value in self.settings.items())
        if extra:  # later keys win in a properties file
            conf += "\n# Given on the command line\n" + extra
        self.conf_file.write_text(conf)
        ports = {"broker_port": self.broker_port, "web_port": self.web_port}
        ports["bookie_port"] = self.bookie_port
        (self.data_dir / PORTS_FILE).write_text(json.dumps(ports))
        level = os.environ.get("PULSARJOBS_BROKER_LOG_LEVEL", "info")
        (self.conf_file.parent / "log4j2.xml").write_text(render("log4j2.xml", log_level=level))

    def _spawn(self, jdk: Jdk, jars: str) -> None:
        command = [str(jdk.java), *jvm_options(jdk, self.heap)]
        command += [
            f"-Dlog4j.configurationFile={self.conf_file.parent / 'log4j2.xml'}",
            "-cp", jars, MAIN_CLASS,
            "--config", str(self.conf_file),
            "--no-functions-worker", "--no-stream-storage",
            "--metadata-dir", str(self.data_dir / "metadata"),
            "--bookkeeper-dir", str(self.data_dir / "bookkeeper"),
            "--bookkeeper-port", str(self.bookie_port),
        ]  # fmt: skip
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the starting terminal must not reach it
            )
        self.pid_file.write_text(f"{self._process.pid}\n")

    def _wait_until_serving(self, say: Progress, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        with Admin(self.admin_url, timeout=5.0) as admin:
            while not admin.healthy():
                if self._process is not None and self._process.poll() is not None:
                    self.pid_file.unlink(missing_ok=True)
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
        probe(self.service_url, f"persistent://{self.namespaces[0]}/pulsarjobs-probe")

    def _wait_for_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.pid == pid:
                if self._process.poll() is not None:
                    return True
            elif not process_alive(pid):
                return True
            time.sleep(0.1)
        return False


def jvm_options(jdk: Jdk, heap: str) -> list[str]:
    options = ["-Xms128m", f"-Xmx{heap}", "-XX:MaxDirectMemorySize=1g"]
    options += [f"--add-opens={module}=ALL-UNNAMED" for module in ADD_OPENS]
    options.append("-Dio.netty.tryReflectionSetAccessible=true")
    if jdk.version[0] >= 22:
        # Netty and RocksDB use native access and Unsafe; newer JDKs warn unless allowed.
        options.append("--enable-native-access=ALL-UNNAMED")
    if jdk.version[0] >= 24:
        options.append("--sun-misc-unsafe-memory-access=allow")
    return options


def registration_loop(log: str, threshold: int = 50) -> bool:
    """True when the log shows the bookie's registration lock invalidated over and over."""
    lines = (line for line in log.splitlines() if LOOP_SIGNATURE in line)
    return sum(1 for line in lines if "/ledgers/available/" in line) >= threshold


def startup_failure(log: list[str]) -> str:
    """The most telling line of a failed start: the deepest cause of the first exception."""
    causes = [line for line in log if line.startswith("Caused by:")]
    if causes:
        return causes[-1].removeprefix("Caused by:").strip()
    errors = [line for line in log if " ERROR " in line or "Exception" in line]
    return errors[0].strip() if errors else (log[-1].strip() if log else "no output")


def probe(service_url: str, topic: str, timeout_ms: int = 10_000) -> None:
    """Send one message and read it back: the broker really serves clients."""
    import pulsar

    client = pulsar.Client(
        service_url,
        operation_timeout_seconds=10,
        logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn),
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


def process_command(pid: int) -> str:
    if Path("/proc/self").exists():
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return ""
    done = subprocess.run(
        ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return done.stdout


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone in all but name
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
