"""A first call to the broker hears a refusal from the admin API while the client still retries,
and is ended then, never left behind on its thread (pulsarjobs/transport/refusals.py); the real
broker's refusals: tests/integration/test_security.py."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from pulsarjobs.errors import AccessDenied, NotPermitted
from pulsarjobs.settings import Settings
from pulsarjobs.transport import refusals

SETTINGS = Settings(service_url="pulsar://nowhere.invalid:6650")


@pytest.fixture
def admin_says(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What the stand-in admin API answers, once per question (each question pops one; Ctrl-C
    is raised)."""
    answers: list[object] = []

    def answer(settings: Settings) -> object:
        said = answers.pop(0)
        if isinstance(said, KeyboardInterrupt):
            raise said
        return said

    monkeypatch.setattr(refusals, "REFUSAL_LOOK_S", 0.05)
    monkeypatch.setattr(refusals, "refused_by_admin", answer)
    return answers


class Client:
    """A stand-in client whose call waits until it answers (`release`) or is closed."""

    def __init__(self) -> None:
        self.released, self.closed = threading.Event(), threading.Event()

    def call(self) -> str:
        self.released.wait(10)
        return "closed" if self.closed.is_set() else "producer"

    def close(self) -> None:
        self.closed.set()
        self.released.set()


def left_behind() -> bool:
    return any(thread.name == "pulsarjobs-first-contact" for thread in threading.enumerate())


def answered(call: Callable[[], str], client: Client) -> str:
    return refusals.answered(call, SETTINGS, client.close)


def test_a_call_that_answers_in_time_asks_nothing_more(admin_says: list[object]) -> None:
    client = Client()
    assert answered(lambda: "producer", client) == "producer"
    with pytest.raises(ValueError, match="its own"):
        answered(lambda: (_ for _ in ()).throw(ValueError("its own")), client)
    assert admin_says == []  # never asked (it would have raised IndexError)
    assert not client.closed.is_set()


def test_a_refusal_ends_the_waiting_call_and_is_raised(admin_says: list[object]) -> None:
    client = Client()
    admin_says.append(AccessDenied("The broker at ... rejected the token"))
    with pytest.raises(AccessDenied, match="rejected the token"):
        answered(client.call, client)
    assert client.closed.is_set()  # the client was closed, which ended the call...
    assert not left_behind()  # ...whose thread is over: nothing inside the client at exit


def test_a_slow_call_nobody_refuses_is_waited_for(admin_says: list[object]) -> None:
    client = Client()
    admin_says.append(None)
    threading.Timer(0.3, client.released.set).start()
    assert answered(client.call, client) == "producer"
    assert admin_says == []  # asked once
    assert not client.closed.is_set()


def test_a_missing_permission_is_left_for_the_client_to_say(admin_says: list[object]) -> None:
    """A role granted topics one by one may be refused the namespace's listing: the client's
    own answer decides."""
    client = Client()
    admin_says.append(NotPermitted("The broker at ... does not let role 'api' do this"))
    threading.Timer(0.3, client.released.set).start()
    assert answered(client.call, client) == "producer"
    assert not client.closed.is_set()


def test_a_call_given_up_by_ctrl_c_is_ended_too(admin_says: list[object]) -> None:
    client = Client()
    admin_says.append(KeyboardInterrupt())  # Ctrl-C while the admin API is asked
    with pytest.raises(KeyboardInterrupt):
        answered(client.call, client)
    assert client.closed.is_set() and not left_behind()
