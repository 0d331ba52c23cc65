"""Where the broker is and how jobs are laid out on it: from arguments, else PULSARJOBS_* env."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from pulsarjobs.errors import ConfigurationError

ENV_PREFIX = "PULSARJOBS_"


@dataclass(frozen=True, slots=True)
class Settings:
    service_url: str = "pulsar://127.0.0.1:6650"
    admin_url: str = "http://127.0.0.1:8080"
    tenant: str = "public"
    namespace: str = "pulsarjobs"
    token: str | None = None
    subscription: str = "pulsarjobs"
    max_message_size: int = 5 * 1024 * 1024  # the broker's maxMessageSize
    heartbeat_interval: float = 5.0  # seconds between a worker's heartbeats

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
        for name in ("tenant", "namespace", "subscription"):
            value = getattr(self, name)
            if not value or "/" in value:
                raise ConfigurationError(f"{name} {value!r} must be a non-empty name without '/'")

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then PULSARJOBS_<FIELD> variables, then the given overrides."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            if (value := os.environ.get(ENV_PREFIX + field.name.upper())) is not None:
                values[field.name] = value
        values.update({key: value for key, value in overrides.items() if value is not None})
        if "max_message_size" in values:
            values["max_message_size"] = int(values["max_message_size"])
        if "heartbeat_interval" in values:
            values["heartbeat_interval"] = float(values["heartbeat_interval"])
        return cls(**values)

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def full_namespace(self) -> str:
        return f"{self.tenant}/{self.namespace}"


def external_service_url() -> str | None:
    """The broker named in the environment, which replaces the local launcher."""
    return os.environ.get(ENV_PREFIX + "SERVICE_URL")
