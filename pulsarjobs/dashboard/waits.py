"""The Waiting page: the durable jobs waiting for a signal (`ctx.wait_for`), by key, as
`pulsarjobs waiting` lists them; and what the Send signal form asks for, checked before anything
is sent (the action is in actions.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request

from pulsarjobs.dashboard.state import Dashboard
from pulsarjobs.dashboard.views import BadRequest, Context
from pulsarjobs.errors import EnvelopeError
from pulsarjobs.operations.durations import parse_duration
from pulsarjobs.wire.envelope import decode
from pulsarjobs.workflows.signals import Waiting

DEFAULT_KEEP = "24h"  # as `pulsarjobs signal --keep` and app.signal keep a signal


@dataclass(frozen=True, slots=True)
class WaitingJob:
    key: str
    job_id: str
    type: str
    queue: str
    wait: str  # the wait's name among the job's steps
    times_out_at: datetime


@dataclass(frozen=True, slots=True)
class KeyGroup:
    key: str
    jobs: list[WaitingJob]  # the soonest to time out first


@dataclass(frozen=True, slots=True)
class SignalAsked:
    key: str
    payload: Any
    keep: timedelta
    keep_text: str


def waiting(request: Request, dash: Dashboard) -> Context:
    only = request.query_params.get("key") or None
    jobs = [shown(wait) for wait in dash.inspector.waiting() if only in (None, wait.key)]
    jobs.sort(key=lambda job: job.key)  # stable: by key, each key's soonest first
    groups = [KeyGroup(key, list(held)) for key, held in groupby(jobs, key=lambda job: job.key)]
    return {"key": only, "count": len(jobs), "keys": groups}


def shown(wait: Waiting) -> WaitingJob:
    try:
        envelope = decode(wait.job)
        job_type, queue = envelope.type, envelope.queue
    except EnvelopeError:  # written by something else: the wait still shows, and can be ended
        job_type, queue = "-", "-"
    return WaitingJob(wait.key, wait.job_id, job_type, queue, wait.name, wait.deadline)


def signal_asked(form: FormData) -> SignalAsked:
    """The key, the payload (JSON; empty is null) and how long to keep the signal, or
    BadRequest saying in one line what is wrong."""
    key = str(form.get("key") or "")
    if not key.strip():
        raise BadRequest("Say which key to signal: key=KEY.")
    text = str(form.get("payload") or "").strip() or "null"
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"The payload is not JSON: {exc}.") from None
    keep_text = str(form.get("keep") or "").strip() or DEFAULT_KEEP
    try:
        keep = parse_duration(keep_text)
    except ValueError as exc:
        raise BadRequest(f"keep: {exc}.") from None
    return SignalAsked(key, payload, keep, keep_text)
