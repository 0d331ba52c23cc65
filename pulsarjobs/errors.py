"""The errors pulsarjobs raises. Each says what went wrong and what to do about it."""


class PulsarJobsError(Exception):
    """Base of every error raised by pulsarjobs."""


class ConfigurationError(PulsarJobsError):
    """A setting, an installed tool or a declaration is missing or wrong."""


class BrokerError(PulsarJobsError):
    """The Pulsar broker could not be started, reached or used."""


class BrokerUnavailable(BrokerError):
    """No broker answers at the URL tried."""


class NotFound(BrokerError):
    """The broker has no such topic, subscription or namespace."""


class NotDueLater(PulsarJobsError):
    """Run now was asked of a job that is due already (waiting for a worker, or running): it
    runs as soon as a worker takes it, and a copy would run it twice."""


class EnqueueError(PulsarJobsError):
    """A job was not accepted by the broker; it was not enqueued."""


class PayloadTooLarge(EnqueueError):
    """The encoded job is larger than the broker accepts."""


class JobTimeout(PulsarJobsError, TimeoutError):
    """A run of a job took longer than its timeout."""


class AccessDenied(BrokerError):
    """The broker refused this process's token or role, or its TLS certificate is not trusted."""


class NotPermitted(AccessDenied):
    """The broker knows this token's role, and does not let it do what was asked."""


class EnvelopeError(PulsarJobsError, ValueError):
    """The message could not be decoded as a job envelope; the message says why."""


class ArgumentError(EnvelopeError):
    """A job argument cannot be encoded; the message names its path, e.g. ``args[1]['when']``."""


class JobFailed(PulsarJobsError):
    """The job whose result was asked for failed for good: `error_type`, `error_message` and
    `remote_traceback` are its last error, as its worker saw it."""

    def __init__(
        self, job_id: str, error_type: str, error_message: str, remote_traceback: str
    ) -> None:
        super().__init__(f"job {job_id} failed: {error_type}: {error_message}")
        self.job_id = job_id
        self.error_type = error_type
        self.error_message = error_message
        self.remote_traceback = remote_traceback


class ResultTimeout(PulsarJobsError, TimeoutError):
    """No result of the job came in time: it has not settled yet, keeps no result (declare it
    with `keep_result=`), or its result expired."""
