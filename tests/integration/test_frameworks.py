"""The web-framework examples (examples/frameworks, shown in docs/frameworks.md) against a real
broker: FastAPI with its lifespan, `enqueue_async` in a handler and the outbox in a request's
transaction (on the real PostgreSQL: asyncio needs psycopg); Django with `on_commit` and the
outbox through its ORM, on SQLite and on the real PostgreSQL (tests/apps/django_shop.py drives
it with Django's test client, in a process of its own per database)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa

from pulsarjobs.outbox.store import Store
from pulsarjobs.settings import Settings
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import decode
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, read_topic, settings_env, wait_until

pytestmark = pytest.mark.broker

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")  # Starlette would rather have httpx2
    from starlette.testclient import TestClient


def mail(settings: Settings) -> list[tuple[str, list[object]]]:
    """The jobs stored on the mail queue: (type, arguments)."""
    found = [decode(m.data()) for m in read_topic(settings, topics_for(settings, "mail").jobs)]
    return [(envelope.type, list(envelope.args)) for envelope in found]


def fresh_import(name: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> ModuleType:
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def pending(url: str, settings: Settings) -> int:
    engine = sa.create_engine(url)
    try:
        return Store(engine, settings.full_namespace).lag().pending
    finally:
        engine.dispose()


def test_fastapi_enqueues_from_a_handler_and_through_the_outbox_in_the_requests_transaction(
    broker: BrokerUnderTest, postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fresh_settings(broker)
    env = {**pulsarjobs_env(settings, tmp_path), "SHOP_DATABASE": postgres}
    shop = fresh_import("examples.frameworks.fastapi_shop", monkeypatch, env)
    with TestClient(shop.api) as client:  # runs its lifespan: the relay, then closing the App
        welcome = client.post("/signups", json={"email": "ada@example.com"})
        order = client.post("/orders", json={"total": 42})
        refused = client.post("/orders", json={"total": 5_000})
        assert (welcome.status_code, order.status_code, refused.status_code) == (200, 200, 402)
        wait_until(lambda: len(mail(settings)) >= 2, 30)
        wait_until(lambda: pending(postgres, settings) == 0, 10)
    assert mail(settings) == [
        ("send_welcome", ["ada@example.com"]),
        ("send_receipt", [order.json()["order"]]),
    ]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_django_enqueues_on_commit_and_through_the_outbox_in_its_transaction(
    database: str, broker: BrokerUnderTest, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = fresh_settings(broker)
    env = {**os.environ, **pulsarjobs_env(settings, tmp_path),
           "DJANGO_SETTINGS_MODULE": "examples.frameworks.django_shop.settings"}  # fmt: skip
    if database == "postgresql":
        url = request.getfixturevalue("postgres")  # postgresql+psycopg://...
        env["SHOP_POSTGRES"], outbox_database = url.replace("+psycopg", ""), url
    else:
        env["SHOP_SQLITE"] = str(tmp_path / "shop.sqlite3")
        outbox_database = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    command = [sys.executable, "-m", "tests.apps.django_shop", outbox_database]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.splitlines()[-1])
    statuses = {name: status for name, (status, _) in answers.items()}
    assert statuses == {"welcome": 200, "twice": 500, "order": 200, "refused": 402, "pending": 0}
    assert mail(settings) == [
        ("send_welcome", ["ada@example.com"]),
        ("send_receipt", [answers["order"][1]["order"]]),
    ]


def pulsarjobs_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    every = settings_env(settings, tmp_path / "record.jsonl")
    return {name: value for name, value in every.items() if name.startswith("PULSARJOBS_")}
