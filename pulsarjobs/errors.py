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


class EnqueueError(PulsarJobsError):
    """A job was not accepted by the broker; it was not enqueued."""


class PayloadTooLarge(EnqueueError):
    """The encoded job is larger than the broker accepts."""


class JobTimeout(PulsarJobsError, TimeoutError):
    """A run of a job took longer than its timeout."""


class AccessDenied(BrokerError):
    """The broker refused this process's token or role, or its TLS certificate is not trusted."""


class EnvelopeError(PulsarJobsError, ValueError):
    """The message could not be decoded as a job envelope; the message says why."""


class ArgumentError(EnvelopeError):
    """A job argument cannot be encoded; the message names its path, e.g. ``args[1]['when']``."""
