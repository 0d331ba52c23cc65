"""A local Apache Pulsar cluster on one machine: ZooKeeper, three bookies and two brokers.

Each node is its own JVM from the same cached jars as the standalone, with its config, data,
pid file and log under one data directory. Entries are written to two bookies out of three
(ensemble, write and ack quorum 2), so one bookie may die; a killed broker's topics move to the
other broker once its metadata session expires (`session_timeout_ms`). With `auth` and `tls`
the brokers enforce tokens and serve TLS only, as the standalone does (security.py); ZooKeeper
and the bookies stay plain text on the loopback interface.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pulsarjobs.broker.cluster_ports import BOOKIES, ClusterPorts
from pulsarjobs.broker.jars import PULSAR_VERSION, classpath
from pulsarjobs.broker.java import Jdk, find_jdk
from pulsarjobs.broker.launcher import DEFAULT_NAMESPACES, LOG_CONFIG, probe, write_log_config
from pulsarjobs.broker.node import METADATA_DRIVERS, Node, Role
from pulsarjobs.broker.process import java_command, port_in_use, startup_failure
from pulsarjobs.broker.security import BrokerSecurity
from pulsarjobs.broker.templates import merged, render
from pulsarjobs.errors import BrokerError
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin

CLUSTER_NAME = "pulsarjobs"
# Long enough to ride out a GC pause on a busy laptop, short enough that a killed broker's
# queues come back within about 15 s (Pulsar's default is 30 s).
DEFAULT_SESSION_TIMEOUT_MS = 10_000
SAVED_FILE = "cluster.json"  # the ports, session timeout and security options of the last start
INITIALISED = "metadata-initialised"

METADATA_SETUP_MAIN = "org.apache.pulsar.PulsarClusterMetadataSetup"

ClusterState = Literal["running", "degraded", "stopped"]
Progress = Callable[[str], None]


def default_data_dir() -> Path:
    if explicit := os.environ.get("PULSARJOBS_CLUSTER_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "pulsarjobs" / "cluster"


@dataclass(frozen=True)
class NodeStatus:
    name: str
    state: str
    pid: int | None
    port: int


@dataclass(frozen=True)
class ClusterStatus:
    state: ClusterState
    nodes: list[NodeStatus]
    service_url: str
    admin_url: str


@dataclass
class LocalCluster:
    data_dir: Path = field(default_factory=default_data_dir)
    ports: ClusterPorts = field(default_factory=ClusterPorts)
    version: str = PULSAR_VERSION
    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS
    namespaces: Sequence[str] = DEFAULT_NAMESPACES
    auth: bool = False  # token authentication and authorization on both brokers
    tls: bool = False  # TLS on the brokers' ports, plain text off
    nodes: dict[str, Node] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        security, data_dir = self.security, self.data_dir
        members = [Node.of("zookeeper", "zookeeper", data_dir, self.ports.zookeeper, security)]
        members += [
            Node.of(f"bookie-{n}", "bookie", data_dir, port, security)
            for n, port in enumerate(self.ports.bookies, 1)
        ]
        members += [
            Node.of(f"broker-{n}", "broker", data_dir, web, security, service_port=port)
            for n, (port, web) in enumerate(zip(self.ports.brokers, self.ports.web, strict=True), 1)
        ]
        self.nodes = {member.name: member for member in members}

    @classmethod
    def at(
        cls,
        data_dir: Path | None = None,
        ports: ClusterPorts | None = None,
        session_timeout_ms: int | None = None,
        auth: bool | None = None,
        tls: bool | None = None,
    ) -> LocalCluster:
        """The cluster of a data directory, with the ports, session timeout and security
        options it was last started with unless given."""
        data_dir = data_dir or default_data_dir()
        saved: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads((data_dir / SAVED_FILE).read_text())
        if ports is None and "ports" in saved:
            ports = ClusterPorts.from_json(saved["ports"])
        return cls(
            data_dir=data_dir,
            ports=ports or ClusterPorts(),
            session_timeout_ms=session_timeout_ms
            or saved.get("session_timeout_ms", DEFAULT_SESSION_TIMEOUT_MS),
            auth=bool(saved.get("auth", False)) if auth is None else auth,
            tls=bool(saved.get("tls", False)) if tls is None else tls,
        )

    @property
    def service_url(self) -> str:
        """Every broker: the client fails over to another one when the one it uses dies."""
        return self.security.service_url(self.ports.brokers)

    @property
    def admin_url(self) -> str:
        return self.admin_urls[0]

    @property
    def admin_urls(self) -> list[str]:
        return [self.security.admin_url(port) for port in self.ports.web]

    @property
    def security(self) -> BrokerSecurity:
        return BrokerSecurity(self.data_dir / "security", auth=self.auth, tls=self.tls)

    def client_settings(self) -> Settings:
        """How a client reaches the cluster as its super-user (the admin token, the CA)."""
        return self.security.client_settings(self.service_url, self.admin_url)

    def role(self, role: Role) -> list[Node]:
        return [node for node in self.nodes.values() if node.role == role]

    def node_serving(self, broker_url: str) -> Node:
        """The broker node behind a broker URL (as a topic lookup returns it)."""
        for node in self.role("broker"):
            if broker_url.rstrip("/").endswith(f":{node.service_port}"):
                return node
        raise BrokerError(f"No broker of this cluster serves {broker_url}.")

    def status(self) -> ClusterStatus:
        nodes = [
            NodeStatus(node.name, node.process.state(), node.process.pid, node.port)
            for node in self.nodes.values()
        ]
        running = sum(1 for node in nodes if node.state == "running")
        state: ClusterState = (
            "running" if running == len(nodes) else "degraded" if running else "stopped"
        )
        return ClusterStatus(state, nodes, self.service_url, self.admin_url)

    def start(self, progress: Progress | None = None, timeout: float = 240.0) -> ClusterStatus:
        """Start every node that does not run, in order, and wait until the cluster serves;
        harmless when all run."""
        say = progress or (lambda _: None)
        current = self.status()
        if current.state != "stopped" and LocalCluster.at(self.data_dir).security != self.security:
            raise BrokerError("The cluster runs with other --auth/--tls options: stop it first.")
        if current.state == "running":
            return current
        fresh = current.state == "stopped"
        jdk = find_jdk()
        jars = classpath(self.version, say)
        self._check_ports_free()
        self._write_configs()
        say(f"starting a Pulsar {self.version} cluster on Java {jdk.version_text}")
        deadline = time.monotonic() + timeout
        try:
            self._start_nodes(jdk, jars, deadline, say)
        except BaseException:
            if fresh:  # leave nothing half-started behind
                self.stop()
            raise
        return self.status()

    def _start_nodes(self, jdk: Jdk, jars: str, deadline: float, say: Progress) -> None:
        self.start_node("zookeeper", jdk=jdk, jars=jars, deadline=deadline, say=say)
        if not (self.data_dir / INITIALISED).exists():
            self._initialise_metadata(jdk, jars)
        for group in ("bookie", "broker"):
            waiting = [node for node in self.role(group) if node.process.state() != "running"]
            for node in waiting:
                self._spawn(node, jdk, jars)
            for node in waiting:
                self._wait_until_serving(node, jdk, jars, deadline, say)
        client = self.client_settings()
        with Admin.of(client) as admin:
            for namespace in self.namespaces:
                admin.ensure_namespace(namespace)
        say("checking that a message goes through")
        probe(client, f"persistent://{self.namespaces[0]}/pulsarjobs-probe")

    def start_node(
        self,
        name: str,
        *,
        jdk: Jdk | None = None,
        jars: str | None = None,
        deadline: float | None = None,
        say: Progress | None = None,
    ) -> None:
        """Start one node (a killed broker or bookie, say) and wait until it serves."""
        node = self.nodes[name]
        if node.process.state() == "running":
            return
        jdk = jdk or find_jdk()
        jars = jars or classpath(self.version)
        self._spawn(node, jdk, jars)
        deadline = deadline or time.monotonic() + 180.0
        self._wait_until_serving(node, jdk, jars, deadline, say or (lambda _: None))

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop every node, brokers first; True when any was running."""
        stopped = False
        with ThreadPoolExecutor(max_workers=BOOKIES) as pool:
            for group in ("broker", "bookie", "zookeeper"):
                nodes = self.role(group)
                results = pool.map(lambda node: node.process.stop(timeout), nodes)
                stopped = any(list(results)) or stopped
        return stopped

    def kill(self, name: str) -> bool:
        """kill -9 one node, as a crash would."""
        return self.nodes[name].process.kill()

    def log_tail(self, name: str, lines: int = 50) -> list[str]:
        return self.nodes[name].process.log_tail(lines)

    def _check_ports_free(self) -> None:
        for node in self.nodes.values():
            ports = [node.port] + ([node.service_port] if node.service_port else [])
            busy = [port for port in ports if port_in_use(port)]
            if busy and node.process.state() != "running":
                raise BrokerError(
                    f"Port {busy[0]} on 127.0.0.1, wanted by {node.name}, is in use by another "
                    "process: stop it, or choose other ports with --ports-from."
                )

    def _write_configs(self) -> None:
        conf = self.data_dir / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "run").mkdir(exist_ok=True)
        write_log_config(conf)
        zookeeper = self.nodes["zookeeper"]
        zookeeper.process.conf_file.write_text(
            render(
                "zoo.cfg",
                data_dir=str(self.data_dir / "zookeeper"),
                client_port=str(self.ports.zookeeper),
            )
        )
        for node in self.role("bookie"):
            text = render(
                "bookie.conf",
                bookie_port=str(node.port),
                zookeeper_port=str(self.ports.zookeeper),
                data_dir=str(self.data_dir / node.name),
            )
            node.process.conf_file.write_text(text + "\n" + render("jobs-bookie.conf"))
        security = self.security
        security.prepare()
        for node in self.role("broker"):
            assert node.service_port is not None
            text = render(
                "cluster-broker.conf",
                cluster_name=CLUSTER_NAME,
                broker_port=str(node.service_port),
                web_port=str(node.port),
                zookeeper_port=str(self.ports.zookeeper),
                session_timeout_ms=str(self.session_timeout_ms),
            )
            secured = security.broker_config(node.service_port, node.port)
            node.process.conf_file.write_text(merged(text, render("jobs-broker.conf"), secured))
            node.process.conf_file.chmod(0o600)  # it holds the token secret
        saved = {"ports": asdict(self.ports), "session_timeout_ms": self.session_timeout_ms}
        saved |= {"auth": self.auth, "tls": self.tls}
        (self.data_dir / SAVED_FILE).write_text(json.dumps(saved))

    def _spawn(self, node: Node, jdk: Jdk, jars: str) -> None:
        command = node.command(jdk, jars, log_config=self.data_dir / "conf" / LOG_CONFIG)
        node.process.spawn(command, cwd=self.data_dir)

    def _initialise_metadata(self, jdk: Jdk, jars: str) -> None:
        """Write the cluster's record and BookKeeper's layout into ZooKeeper, once."""
        zookeeper = f"zk:127.0.0.1:{self.ports.zookeeper}"
        arguments = [
            "--cluster", CLUSTER_NAME,
            "--metadata-store", zookeeper,
            "--configuration-metadata-store", zookeeper,
            "--web-service-url", self.admin_url,  # required, even of a cluster with TLS only
            "--broker-service-url", self.service_url,
        ]  # fmt: skip
        if self.tls:
            arguments += ["--web-service-url-tls", self.admin_url]
            arguments += ["--broker-service-url-tls", self.service_url]
        log_file = self.data_dir / "logs" / "metadata-setup.log"
        command = java_command(
            jdk,
            jars,
            METADATA_SETUP_MAIN,
            arguments,
            heap="256m",
            direct_memory="64m",
            log_config=self.data_dir / "conf" / LOG_CONFIG,
            properties=METADATA_DRIVERS,
        )
        with log_file.open("ab") as log:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            failure = startup_failure(log_file.read_text(errors="replace").splitlines()[-400:])
            raise BrokerError(
                f"Initialising the cluster's metadata failed: {failure} (full log: {log_file})."
            )
        (self.data_dir / INITIALISED).touch()

    def _wait_until_serving(
        self, node: Node, jdk: Jdk, jars: str, deadline: float, say: Progress
    ) -> None:
        started = time.monotonic()
        log_offset = node.process.log_size()
        while not node.serves():
            if node.process.exited():
                log = node.process.log_since(log_offset)
                if node.role == "broker" and "LockBusyException" in log:
                    # Its previous self was killed and its registration lives until the
                    # metadata session expires: try again until it does.
                    say(f"{node.name} waits for its previous session to expire")
                    time.sleep(1.0)
                    log_offset = node.process.log_size()
                    self._spawn(node, jdk, jars)
                    continue
                raise BrokerError(
                    f"{node.name} exited while starting: "
                    f"{startup_failure(log.splitlines()[-400:])} "
                    f"(full log: {node.process.log_file})."
                )
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"{node.name} did not serve in time (see {node.process.log_file})."
                )
            say(f"waiting for {node.name} ({time.monotonic() - started:.0f} s)")
            time.sleep(0.25)
