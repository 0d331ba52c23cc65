"""What it is when the broker refuses us, and a first call to it (a producer, a subscription)
that hears so early.

The Pulsar client names a missing permission at once, but a missing or wrong token, an
untrusted certificate or a namespace that does not exist only makes it retry until its
operation timeout (10 s) and then say Timeout. So a first call that has not answered within
REFUSAL_LOOK_S asks the admin API meanwhile, with the same token and trust: a refusal it names
is raised then. A call that answers in time costs nothing more than a thread's start; one slowed
for another reason (a broker starting) costs one admin request, and is waited for as before.

The call is never left behind on its thread: a thread still inside the C++ client as the
interpreter ends aborts the process ("terminate called without an active exception"). So a
refused call, or one given up by Ctrl-C, is ended by closing the client (`abandon`), which
fails it at once, and its thread is joined before the refusal is raised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

import pulsar

from pulsarjobs.errors import AccessDenied, BrokerError, NotFound, NotPermitted, PulsarJobsError
from pulsarjobs.settings import Settings
from pulsarjobs.transport import access
from pulsarjobs.transport.admin import Admin

REFUSAL_LOOK_S = 1.0  # a first call slower than this makes the admin API asked why
ENDING_S = 5.0  # how long an abandoned call may take to end (closing the client ends it in ms)

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


def refusal(settings: Settings, failure: Exception, doing: str) -> AccessDenied | NotFound | None:
    """The access problem, or the missing namespace, behind a client failure, if that is what
    it was: retrying will not help. The client names a missing permission, but only times out
    on a missing or wrong token, fails to connect on an untrusted certificate, and says
    TopicNotFound for a namespace that does not exist: the admin API, asked with the same token
    and trust, says which. Asked after a failure only: nothing on the happy path."""
    if isinstance(failure, AccessDenied | NotFound):  # named already (answered, below)
        return failure
    if isinstance(failure, pulsar.AuthorizationError):
        return access.not_permitted(settings.service_url, settings.token, doing)
    if isinstance(failure, pulsar.AuthenticationError):
        return access.wrong_token(settings.service_url)
    if not isinstance(
        failure, pulsar.Timeout | pulsar.ConnectError | pulsar.TopicNotFound | BrokerError
    ):
        return None
    return refused_by_admin(settings)


def answered(call: Callable[[], T], settings: Settings, abandon: Callable[[], None]) -> T:
    """`call`'s result, or its exception; a refusal the admin API names, once `call` took longer
    than REFUSAL_LOOK_S. `abandon` closes the client `call` waits on."""
    outcome: Future[T] = Future()

    def run() -> None:
        try:
            outcome.set_result(call())
        except BaseException as exc:  # handed to the caller, as the call would have raised it
            outcome.set_exception(exc)

    thread = threading.Thread(target=run, name="pulsarjobs-first-contact", daemon=True)
    thread.start()
    try:
        try:
            return outcome.result(timeout=REFUSAL_LOOK_S)
        except FutureTimeout:
            if outcome.done():  # the call's own TimeoutError
                raise
        refusal = refused_by_admin(settings)
        # Not a missing permission: the client names that itself, at once, and a role granted
        # topics one by one may be refused the namespace's listing the admin API is asked for.
        if refusal is not None and not isinstance(refusal, NotPermitted):
            raise refusal
        return outcome.result()
    except BaseException:
        if not outcome.done():  # refused, or given up (Ctrl-C): end the call, not leave it
            abandon()
        raise
    finally:
        thread.join(ENDING_S)
