"""What a call of a job becomes: the envelope it is sent as, with every option a call and its
job's declaration give (jobs.py), and the checks that fail at the caller rather than in a worker
later."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pulsarjobs.clock import when_due
from pulsarjobs.flow.fairness import fair_of
from pulsarjobs.flow.unique import default_key
from pulsarjobs.jobs import DEFAULT_QUEUE, FlowOptions, Job, JobCall
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.transport.topics import check_queue_name
from pulsarjobs.wire.envelope import ArgumentError, Envelope, new_id


def envelope_of(
    call: JobCall,
    declared: Job[Any, Any] | None,
    now: datetime,
    in_: timedelta | None = None,
    at: datetime | None = None,
    fair_queues: Callable[[], set[str]] = set,
) -> Envelope:
    """The envelope `call` is sent as, made `now`; a job declared elsewhere (`declared` None)
    goes to `default` unless the call names a queue; `fair_queues`, the queues whose workers
    serve fair lanes (fairness.py). Bad options raise here, at the caller."""
    if declared is not None:  # fail here, at the caller, rather than in a worker later
        try:
            declared.check_arguments(call.args, call.kwargs)
        except TypeError as exc:
            raise ArgumentError(f"its args and kwargs do not fit {call.type}"
                                f"{declared.signature}: {exc}") from None  # fmt: skip
    flow = declared.flow if declared else FlowOptions()
    run_at = when_due(now, in_, at)
    if call.order_key is not None and run_at is not None:
        raise ValueError("an ordered job runs in enqueue order: it cannot be scheduled")
    if call.debounce_key is not None and not flow.debounce:
        raise ValueError(f"debounce_key= is for jobs declared with debounce=; not {call.type}")
    if flow.debounce and (run_at is not None or call.order_key is not None):
        raise ValueError("a debounced job is due after its key's last call: it cannot be "
                         "scheduled (in_=, at=) or ordered (order_key=)")  # fmt: skip
    queue = check_queue_name(call.queue or (declared.queue if declared else DEFAULT_QUEUE))
    fair_key, fair_weight = None, 1
    if call.fair_key is not None or (declared is not None and declared.fair is not None):
        fair_key, fair_weight = fair_of(
            call.fair_key, call.fair_weight, declared.fair if declared else None,
            call.args, call.kwargs, queue, fair_queues,
        )  # fmt: skip
        if call.order_key is not None:
            raise ValueError("a job is either ordered or fair-keyed, not both")
    return Envelope(
        id=call.job_id or new_id(),
        type=call.type,
        queue=queue,
        args=call.args,
        kwargs=call.kwargs,
        created_at=now,
        run_at=run_at,
        retry=call.retry or (declared.retry if declared else RetryPolicy()),
        timeout=call.timeout if call.timeout is not None else getattr(declared, "timeout", None),
        expires_at=(run_at or now) + call.expires_in if call.expires_in else None,
        meta=call.meta,
        unique_key=call.unique_key
        or (default_key(call.type, call.args, call.kwargs) if flow.unique_for else None),
        order_key=call.order_key,
        limit_key=call.limit_key or (call.type if flow.limited else None),
        batch_id=call.batch_id,
        keep_result=keep.total_seconds()
        if (keep := call.keep_result or getattr(declared, "keep_result", None))
        else None,
        debounce_key=call.debounce_key or (call.type if flow.debounce else None),
        fair_key=fair_key,
        fair_weight=fair_weight,
    )
