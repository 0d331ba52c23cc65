"""A first call to the broker (a producer, a subscription) that hears early when the broker
refuses us.

The Pulsar client names a missing permission at once, but a missing or wrong token, an
untrusted certificate or a namespace that does not exist only makes it retry until its
operation timeout (10 s) and then say Timeout. So a first call that has not answered within
REFUSAL_LOOK_S asks the admin API meanwhile, with the same token and trust: a refusal it names
is raised then, and the client's call is left to end on its own thread. A call that answers in
time costs nothing more than a thread's start; one slowed for another reason (a broker starting)
costs one admin request, and is waited for as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from pulsarjobs.errors import AccessDenied, NotFound, PulsarJobsError
from pulsarjobs.settings import Settings
from pulsarjobs.transport import access
from pulsarjobs.transport.admin import Admin

REFUSAL_LOOK_S = 1.0  # a first call slower than this makes the admin API asked why

T = TypeVar("T")


def refused_by_admin(settings: Settings) -> AccessDenied | NotFound | None:
    """What the admin API says is wrong with our access to the namespace; None when nothing is,
    or when it is out of reach too."""
    url, namespace = settings.service_url, settings.full_namespace
    try:
        with Admin.of(settings, timeout=5.0) as admin:
            admin.check_access(namespace)
    except AccessDenied as denied:
        return denied
    except NotFound:
        return access.missing_namespace(url, namespace)
    except PulsarJobsError:  # the admin API is out of reach too: no more to tell
        return None
    return None


def answered(call: Callable[[], T], settings: Settings) -> T:
    """`call`'s result, or its exception; a refusal the admin API names, once `call` took longer
    than REFUSAL_LOOK_S."""
    outcome: Future[T] = Future()

    def run() -> None:
        try:
            outcome.set_result(call())
        except BaseException as exc:  # handed to the caller, as the call would have raised it
            outcome.set_exception(exc)

    threading.Thread(target=run, name="pulsarjobs-first-contact", daemon=True).start()
    try:
        return outcome.result(timeout=REFUSAL_LOOK_S)
    except FutureTimeout:
        if outcome.done():  # the call's own TimeoutError
            raise
    refusal = refused_by_admin(settings)
    if refusal is not None:
        raise refusal
    return outcome.result()
