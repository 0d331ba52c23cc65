"""Where the broker is and how jobs are laid out on it: from arguments, else PULSARJOBS_* env."""

from __future__ import annotations

import os
import types
from dataclasses import dataclass, fields, replace
from typing import Any, get_args, get_type_hints

from pulsarjobs.errors import ConfigurationError

ENV_PREFIX = "PULSARJOBS_"
TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
# Room left in a message for its metadata and properties (a key, a dead letter's reason, the
# copy Pulsar's own dead-letter policy makes), which the client counts against the limit too.
METADATA_ROOM = 4 * 1024
MAX_FAIR_LANES = 256  # each lane is a consumer per fair queue in every worker process
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True, slots=True)
class Settings:
    service_url: str = "pulsar://127.0.0.1:6650"
    admin_url: str = "http://127.0.0.1:8080"
    tenant: str = "public"
    namespace: str = "pulsarjobs"
    token: str | None = None  # a JWT: the role the broker knows this process as
    tls_trust_file: str | None = (
        None  # the CA (PEM) a pulsar+ssl:// or https:// broker is signed by
    )
    tls_validate_hostname: bool = True  # the broker's certificate must name the host connected to
    # End-to-end encryption of job payloads (RSA PEM files): producers encrypt with the public
    # key, workers decrypt with the private one. See docs/security.md.
    encryption_public_key: str | None = None
    encryption_private_key: str | None = None
    subscription: str = "pulsarjobs"
    max_message_size: int = 5 * 1024 * 1024  # the broker's maxMessageSize
    heartbeat_interval: float = 5.0  # seconds between a worker's heartbeats
    # Lanes of a fair queue (flow/fairness.py); the same for every app of the namespace:
    # changing it moves keys to other lanes while their jobs still wait in the old ones.
    fair_lanes: int = 16
    # Where each stored job is, for finding one by id (transport/job_index.py): off, a worker
    # saves about 15 µs of CPU per job settled, and jobs are found only while they run.
    job_index: bool = True
    # Seconds between a worker's reports of its counts by job type (the dashboard's Metrics
    # page, type_metrics.py); 0: none, and nothing counted per job.
    metrics_interval: float = 60.0

    def __post_init__(self) -> None:
        if not self.service_url.startswith(("pulsar://", "pulsar+ssl://")):
            raise ConfigurationError(
                f"service_url {self.service_url!r} must start with pulsar:// or pulsar+ssl://"
            )
        if not self.admin_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"admin_url {self.admin_url!r} must start with http:// or https://"
            )
        if self.heartbeat_interval <= 0:
            raise ConfigurationError(
                f"heartbeat_interval must be > 0 seconds, got {self.heartbeat_interval}"
            )
        if self.metrics_interval < 0:
            raise ConfigurationError(
                f"metrics_interval must be >= 0 seconds (0: off), got {self.metrics_interval}"
            )
        if not 1 <= self.fair_lanes <= MAX_FAIR_LANES:
            raise ConfigurationError(
                f"fair_lanes must be between 1 and {MAX_FAIR_LANES}, got {self.fair_lanes}"
            )
        for name in ("tenant", "namespace", "subscription"):
            value = getattr(self, name)
            if not value or "/" in value:
                raise ConfigurationError(f"{name} {value!r} must be a non-empty name without '/'")

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then PULSARJOBS_<FIELD> variables, then the given overrides; text is
        converted to the type of its field."""
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in fields(cls):
            variable = ENV_PREFIX + field.name.upper()
            if (text := os.environ.get(variable)) is not None:
                values[field.name] = parse_setting(text, hints[field.name], variable)
        for name, value in overrides.items():
            if value is None:
                continue
            if isinstance(value, str) and name in hints:  # as from a command line
                value = parse_setting(value, hints[name], name)
            values[name] = value
        return cls(**values)

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def max_payload(self) -> int:
        """The most bytes a job, a result or a step may take: the broker's limit less
        METADATA_ROOM (at the limit itself the client refused the message, or its copy)."""
        return self.max_message_size - METADATA_ROOM

    @property
    def full_namespace(self) -> str:
        return f"{self.tenant}/{self.namespace}"


def parse_setting(text: str, kind: Any, source: str) -> Any:
    """`text` as a value of the type `kind` (int, float, str, or one of them or None); a
    ConfigurationError names `source` (the variable or argument) when it is not one."""
    if isinstance(kind, types.UnionType):  # `X | None`: an empty value means none
        if text == "":
            return None
        (kind,) = (arg for arg in get_args(kind) if arg is not type(None))
    if kind not in TYPE_NAMES:
        raise TypeError(f"settings of type {kind!r} cannot be read from text")
    if kind is bool:
        if text.strip().lower() not in BOOLEANS:
            raise ConfigurationError(f"{source} must be {TYPE_NAMES[kind]}, got {text!r}")
        return BOOLEANS[text.strip().lower()]
    try:
        return kind(text)
    except ValueError:
        raise ConfigurationError(f"{source} must be {TYPE_NAMES[kind]}, got {text!r}") from None


def external_service_url() -> str | None:
    """The broker named in the environment, which replaces the local launcher."""
    return os.environ.get(ENV_PREFIX + "SERVICE_URL")
