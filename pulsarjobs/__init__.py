"""pulsarjobs: background jobs on Apache Pulsar."""

__version__ = "0.1.0"
