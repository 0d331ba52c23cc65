"""A local Apache Pulsar standalone for development, tests and demos."""

from pulsarjobs.broker.jars import PULSAR_VERSION
from pulsarjobs.broker.launcher import LocalBroker, Status

__all__ = ["PULSAR_VERSION", "LocalBroker", "Status"]
