"""A local Apache Pulsar for development, tests and demos: a standalone or a small cluster."""

from pulsarjobs.broker.cluster import LocalCluster
from pulsarjobs.broker.jars import PULSAR_VERSION
from pulsarjobs.broker.launcher import LocalBroker, Status

__all__ = ["PULSAR_VERSION", "LocalBroker", "LocalCluster", "Status"]
