"""A first call to the broker hears a refusal from the admin API while the client still retries
(pulsarjobs/transport/first_contact.py); the real broker's refusals: tests/integration/
test_security.py."""

from __future__ import annotations

import threading

import pytest

from pulsarjobs.errors import AccessDenied
from pulsarjobs.settings import Settings
from pulsarjobs.transport import first_contact

SETTINGS = Settings(service_url="pulsar://nowhere.invalid:6650")


@pytest.fixture
def admin_says(monkeypatch: pytest.MonkeyPatch) -> list[AccessDenied | None]:
    """What the stand-in admin API answers, once per question (each question pops one)."""
    answers: list[AccessDenied | None] = []
    monkeypatch.setattr(first_contact, "REFUSAL_LOOK_S", 0.05)
    monkeypatch.setattr(first_contact, "refused_by_admin", lambda settings: answers.pop(0))
    return answers


def test_a_call_that_answers_in_time_asks_nothing_more(admin_says: list[object]) -> None:
    assert first_contact.answered(lambda: "producer", SETTINGS) == "producer"
    with pytest.raises(ValueError, match="its own"):
        first_contact.answered(lambda: (_ for _ in ()).throw(ValueError("its own")), SETTINGS)
    assert admin_says == []  # never asked (it would have raised IndexError)


def test_a_refusal_is_raised_while_the_call_still_waits(admin_says: list[object]) -> None:
    release = threading.Event()
    admin_says.append(AccessDenied("The broker at ... rejected the token"))
    with pytest.raises(AccessDenied, match="rejected the token"):
        first_contact.answered(lambda: release.wait(10), SETTINGS)
    assert not release.is_set()  # raised before the call ended
    release.set()


def test_a_slow_call_nobody_refuses_is_waited_for(admin_says: list[object]) -> None:
    release = threading.Event()
    admin_says.append(None)
    threading.Timer(0.3, release.set).start()
    assert first_contact.answered(lambda: release.wait(10), SETTINGS) is True
    assert admin_says == []  # asked once
