"""One node of a local Pulsar cluster: ZooKeeper, a bookie or a broker, each its own JVM."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pulsarjobs.broker.java import Jdk
from pulsarjobs.broker.process import JavaProcess, java_command, port_in_use
from pulsarjobs.broker.security import BrokerSecurity
from pulsarjobs.transport.admin import Admin

Role = Literal["zookeeper", "bookie", "broker"]

MAIN_CLASSES: dict[Role, str] = {
    "zookeeper": "org.apache.zookeeper.server.quorum.QuorumPeerMain",
    "bookie": "org.apache.bookkeeper.server.Main",
    "broker": "org.apache.pulsar.PulsarBrokerStarter",
}
# Heap and direct memory: about 1.5 GB for ZooKeeper, three bookies and two brokers.
MEMORY: dict[Role, tuple[str, str]] = {
    "zookeeper": ("128m", "64m"),
    "bookie": ("192m", "256m"),
    "broker": ("384m", "256m"),
}
# What bin/pulsar sets, so that bookies and brokers' BookKeeper clients find Pulsar's metadata.
METADATA_DRIVERS = {
    "bookkeeper.metadata.bookie.drivers": (
        "org.apache.pulsar.metadata.bookkeeper.PulsarMetadataBookieDriver"
    ),
    "bookkeeper.metadata.client.drivers": (
        "org.apache.pulsar.metadata.bookkeeper.PulsarMetadataClientDriver"
    ),
    # Its admin server would take port 8080, where a standalone broker usually serves.
    "zookeeper.admin.enableServer": "false",
}


@dataclass
class Node:
    name: str
    role: Role
    port: int  # answers once the node serves: ZooKeeper's client port, the bookie's, the web port
    process: JavaProcess
    security: BrokerSecurity  # the cluster's: how a broker is reached (ZooKeeper, bookies: plain)
    service_port: int | None = None  # a broker's binary protocol port

    @classmethod
    def of(
        cls,
        name: str,
        role: Role,
        data_dir: Path,
        port: int,
        security: BrokerSecurity,
        service_port: int | None = None,
    ) -> Node:
        process = JavaProcess(
            MAIN_CLASSES[role],
            conf_file=data_dir / "conf" / f"{name}.conf",
            pid_file=data_dir / "run" / f"{name}.pid",
            log_file=data_dir / "logs" / f"{name}.log",
        )
        return cls(name, role, port, process, security, service_port)

    @property
    def admin_url(self) -> str:
        return self.security.admin_url(self.port)

    def admin(self, timeout: float = 10.0) -> Admin:
        """This broker's admin API, as the cluster's super-user."""
        security = self.security
        return Admin(
            self.admin_url, security.admin_token(), timeout, trust_file=security.trust_file
        )

    def command(self, jdk: Jdk, jars: str, log_config: Path) -> list[str]:
        conf = str(self.process.conf_file)
        arguments = {
            "zookeeper": [conf],
            "bookie": ["--conf", conf],
            "broker": ["--broker-conf", conf],
        }[self.role]
        heap, direct_memory = MEMORY[self.role]
        return java_command(
            jdk,
            jars,
            self.process.main_class,
            arguments,
            heap=heap,
            direct_memory=direct_memory,
            log_config=log_config,
            properties=METADATA_DRIVERS,
        )

    def serves(self) -> bool:
        """A broker passes its health check (which writes through the bookies); ZooKeeper and
        a bookie accept connections."""
        if self.role != "broker":
            return port_in_use(self.port)
        with self.admin(timeout=5.0) as admin:
            return admin.healthy()
