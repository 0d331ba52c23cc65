"""Why a run of a job failed, as an envelope carries it (its last error and earlier ones), a
dead letter shows it and a kept result holds it."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import datetime

from pulsarjobs.clock import require_aware, utc_now

_TRACEBACK_LIMIT = 8000
# A message longer than this is cut: an error quoting a large argument would make the job's
# retry, or its dead letter, too large for the broker to store.
MESSAGE_LIMIT = 2000


def _type_name(cls: type) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True, slots=True)
class JobError:
    """Why a run of a job failed."""

    type: str  # exception type, module-qualified unless built in
    message: str
    traceback: str
    failed_at: datetime
    worker: str

    def __post_init__(self) -> None:
        require_aware("failed_at", self.failed_at)

    @classmethod
    def from_exception(
        cls, exc: BaseException, worker: str, now: datetime | None = None
    ) -> JobError:
        """Describe ``exc``, raised by a run on ``worker``; the traceback keeps its last lines."""
        return cls(
            type=_type_name(type(exc)),
            message=_cut(_utf8(str(exc))),
            traceback=_utf8("".join(traceback.format_exception(exc))[-_TRACEBACK_LIMIT:]),
            failed_at=utc_now() if now is None else now,
            worker=worker,
        )

    @property
    def summary(self) -> str:
        """`Type: message`, as logs and dead letters show the error."""
        return f"{self.type}: {self.message}"


def _cut(message: str) -> str:
    if len(message) <= MESSAGE_LIMIT:
        return message
    return f"{message[:MESSAGE_LIMIT]}… ({len(message) - MESSAGE_LIMIT} more characters)"


def _utf8(text: str) -> str:
    """`text` as UTF-8 carries it: a lone surrogate (a file name decoded with surrogateescape,
    say) as its escape, so that the error can be stored with its job."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
