"""pulsarjobs: background jobs on Apache Pulsar.

Everything a user needs is importable from here, and `pulsarjobs.testing` for tests; the other
modules are the implementation and may change.
"""

from pulsarjobs.app import App
from pulsarjobs.batch_state import BatchProgress
from pulsarjobs.batches import Batch
from pulsarjobs.cancels import Cancel, run_now
from pulsarjobs.chains import Chained
from pulsarjobs.cron import Schedule
from pulsarjobs.dead_letters import DeadLetter, DeadLetterFilter
from pulsarjobs.envelope import ArgumentError, Envelope, EnvelopeError, JobError
from pulsarjobs.errors import (
    BrokerError,
    BrokerUnavailable,
    ConfigurationError,
    EnqueueError,
    JobFailed,
    JobTimeout,
    NotDueLater,
    NotFound,
    PayloadTooLarge,
    PulsarJobsError,
    ResultTimeout,
)
from pulsarjobs.execution import current_job
from pulsarjobs.heartbeat import Progress, RunningJob
from pulsarjobs.inspect import Inspector, QueueStats, WorkerStatus
from pulsarjobs.jobs import Job, JobCall
from pulsarjobs.metrics import WorkerMetrics
from pulsarjobs.middleware import Middleware
from pulsarjobs.pauses import Pause
from pulsarjobs.progress import CurrentJob
from pulsarjobs.queue_metrics import QueueCollector
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.settings import Settings
from pulsarjobs.snooze import Snooze
from pulsarjobs.topic_stats import SubscriptionStats, TopicInfo, TopicStats
from pulsarjobs.unique import DuplicateJob
from pulsarjobs.verdicts import Outcome, Verdict
from pulsarjobs.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "App",
    "ArgumentError",
    "Batch",
    "BatchProgress",
    "BrokerError",
    "BrokerUnavailable",
    "Cancel",
    "Chained",
    "ConfigurationError",
    "CurrentJob",
    "DeadLetter",
    "DeadLetterFilter",
    "DuplicateJob",
    "EnqueueError",
    "Envelope",
    "EnvelopeError",
    "Inspector",
    "Job",
    "JobCall",
    "JobError",
    "JobFailed",
    "JobTimeout",
    "Middleware",
    "NotDueLater",
    "NotFound",
    "Outcome",
    "Pause",
    "PayloadTooLarge",
    "Progress",
    "PulsarJobsError",
    "QueueCollector",
    "QueueStats",
    "ResultTimeout",
    "RetryPolicy",
    "RunningJob",
    "Schedule",
    "Settings",
    "Snooze",
    "SubscriptionStats",
    "TopicInfo",
    "TopicStats",
    "Verdict",
    "Worker",
    "WorkerMetrics",
    "WorkerStatus",
    "current_job",
    "run_now",
]
