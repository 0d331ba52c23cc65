"""pulsarjobs: background jobs on Apache Pulsar.

Everything a user needs is importable from here, and `pulsarjobs.testing` for tests; the other
modules are the implementation and may change.
"""

from pulsarjobs.app import App
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
from pulsarjobs.flow.unique import DuplicateJob
from pulsarjobs.grouping.job import GroupedJob
from pulsarjobs.grouping.options import GroupOptions, Member
from pulsarjobs.jobs import Debounce, Job, JobCall
from pulsarjobs.middleware import Middleware
from pulsarjobs.operations.cancels import Cancel, run_now
from pulsarjobs.operations.dead_letters import DeadLetter, DeadLetterFilter
from pulsarjobs.operations.inspector import Inspector, QueueStats, WorkerStatus
from pulsarjobs.operations.pauses import Pause
from pulsarjobs.operations.queue_metrics import QueueCollector
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.scheduling.cron import Schedule
from pulsarjobs.settings import Settings
from pulsarjobs.snooze import Snooze
from pulsarjobs.transport.topic_stats import SubscriptionStats, TopicInfo, TopicStats
from pulsarjobs.wire.envelope import ArgumentError, Envelope, EnvelopeError, JobError
from pulsarjobs.wire.heartbeat import Progress, RunningJob
from pulsarjobs.wire.verdicts import Outcome, Verdict
from pulsarjobs.worker.execution import current_job
from pulsarjobs.worker.metrics import WorkerMetrics
from pulsarjobs.worker.progress import CurrentJob
from pulsarjobs.worker.worker import Worker
from pulsarjobs.workflows.batch_state import BatchProgress
from pulsarjobs.workflows.batches import Batch
from pulsarjobs.workflows.chains import Chained
from pulsarjobs.workflows.durable import Durable
from pulsarjobs.workflows.durable_errors import ChildFailed, WaitTimedOut

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
    "ChildFailed",
    "ConfigurationError",
    "CurrentJob",
    "DeadLetter",
    "DeadLetterFilter",
    "Debounce",
    "DuplicateJob",
    "Durable",
    "EnqueueError",
    "Envelope",
    "EnvelopeError",
    "GroupOptions",
    "GroupedJob",
    "Inspector",
    "Job",
    "JobCall",
    "JobError",
    "JobFailed",
    "JobTimeout",
    "Member",
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
    "WaitTimedOut",
    "Worker",
    "WorkerMetrics",
    "WorkerStatus",
    "current_job",
    "run_now",
]
