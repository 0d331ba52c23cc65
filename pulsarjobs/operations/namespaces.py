"""A namespace set up for jobs: what `pulsarjobs namespace create` applies, and why.

- No message TTL unless asked: a TTL counts from publish time, so it would silently delete jobs
  scheduled further ahead, retries waiting for their backoff, and dead letters nobody replayed.
- No retention unless asked: an acknowledged job has been dealt with; retention only keeps it
  for audits or re-reading, at the cost of storage.
- De-duplication on: a producer that reconnects re-sends what the broker had not confirmed, and
  de-duplication stores such a job once instead of twice. Replays rely on it as well.
- Idle topics are never deleted: a quiet dead-letter topic still holds jobs someone will want.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pulsarjobs.transport.admin import Admin


@dataclass(frozen=True, slots=True)
class JobPolicies:
    retention: timedelta | None = None  # keep acknowledged messages this long
    ttl: timedelta | None = None  # delete unacknowledged messages this old
    deduplication: bool = True


def set_up_namespace(admin: Admin, namespace: str, policies: JobPolicies) -> bool:
    """Create the namespace if it is missing and apply the policies; True when created."""
    created = admin.ensure_namespace(namespace)
    minutes = int(policies.retention.total_seconds() // 60) if policies.retention else 0
    retention = {"retentionTimeInMinutes": minutes, "retentionSizeInMB": -1 if minutes else 0}
    admin.set_namespace_policy(namespace, "retention", retention)
    admin.set_namespace_policy(
        namespace, "messageTTL", int(policies.ttl.total_seconds()) if policies.ttl else 0
    )
    admin.set_namespace_policy(namespace, "deduplication", policies.deduplication)
    admin.set_namespace_policy(
        namespace,
        "inactiveTopicPolicies",
        {
            "inactiveTopicDeleteMode": "delete_when_no_subscriptions",
            "maxInactiveDurationSeconds": 0,
            "deleteWhileInactive": False,
        },
    )
    return created
