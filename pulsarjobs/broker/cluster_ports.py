"""The ports of a local cluster's nodes: ZooKeeper, three bookies, two brokers and their web
ports, all on 127.0.0.1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pulsarjobs.broker.process import free_port

BOOKIES = 3
BROKERS = 2


@dataclass(frozen=True)
class ClusterPorts:
    zookeeper: int = 2181
    bookies: tuple[int, ...] = (3181, 3182, 3183)
    brokers: tuple[int, ...] = (6650, 6651)
    web: tuple[int, ...] = (8080, 8081)

    @classmethod
    def starting_at(cls, base: int) -> ClusterPorts:
        """Eight consecutive ports: ZooKeeper, the bookies, the brokers, their web ports."""
        ports = list(range(base, base + 1 + BOOKIES + 2 * BROKERS))
        return cls(
            zookeeper=ports[0],
            bookies=tuple(ports[1 : 1 + BOOKIES]),
            brokers=tuple(ports[1 + BOOKIES : 1 + BOOKIES + BROKERS]),
            web=tuple(ports[1 + BOOKIES + BROKERS :]),
        )

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> ClusterPorts:
        return cls(
            zookeeper=int(saved["zookeeper"]),
            bookies=tuple(saved["bookies"]),
            brokers=tuple(saved["brokers"]),
            web=tuple(saved["web"]),
        )

    @classmethod
    def free(cls) -> ClusterPorts:
        """Ports nothing listens on now (for tests)."""
        return cls(
            zookeeper=free_port(),
            bookies=tuple(free_port() for _ in range(BOOKIES)),
            brokers=tuple(free_port() for _ in range(BROKERS)),
            web=tuple(free_port() for _ in range(BROKERS)),
        )
