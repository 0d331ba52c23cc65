"""pulsarjobs: background jobs on Apache Pulsar.

Everything a user needs is importable from here; modules prefixed with nothing else are the
implementation and may change.
"""

from pulsarjobs.app import App, Job, JobCall
from pulsarjobs.cron import Schedule
from pulsarjobs.envelope import ArgumentError, Envelope, EnvelopeError, JobError
from pulsarjobs.errors import (
    BrokerError,
    BrokerUnavailable,
    ConfigurationError,
    EnqueueError,
    JobTimeout,
    PayloadTooLarge,
    PulsarJobsError,
)
from pulsarjobs.execution import current_job
from pulsarjobs.middleware import Middleware
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.settings import Settings
from pulsarjobs.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "App",
    "ArgumentError",
    "BrokerError",
    "BrokerUnavailable",
    "ConfigurationError",
    "EnqueueError",
    "Envelope",
    "EnvelopeError",
    "Job",
    "JobCall",
    "JobError",
    "JobTimeout",
    "Middleware",
    "PayloadTooLarge",
    "PulsarJobsError",
    "RetryPolicy",
    "Schedule",
    "Settings",
    "Worker",
    "current_job",
]
