"""Drives the Django example (examples/frameworks/django_shop) in this process with Django's
test client, the outbox relay in a thread: `python -m tests.apps.django_shop OUTBOX_DATABASE`
with DJANGO_SETTINGS_MODULE and the shop's database in the environment (Django is set up once
a process, so each database gets a process). Prints the responses' status codes and bodies
as JSON once every row is published."""

from __future__ import annotations

import json
import sys
import time

import django
import sqlalchemy as sa
from django.core.management import call_command
from django.test import Client

from pulsarjobs.outbox import metadata
from pulsarjobs.outbox.store import Store


def main(outbox_database: str) -> None:
    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)  # the shop's tables
    engine = sa.create_engine(outbox_database)
    metadata.create_all(engine)  # the outbox table
    from examples.frameworks.django_shop.jobs import app, outbox

    client = Client(raise_request_exception=False)  # a 500, as a server answers

    def post(path: str, body: dict[str, object]) -> tuple[int, object]:
        response = client.post(path, json.dumps(body), "application/json")
        is_json = response.headers.get("Content-Type") == "application/json"
        return response.status_code, response.json() if is_json else None

    store = Store(engine, app.settings.full_namespace)
    try:
        with outbox.relay(engine, poll_interval=0.2):  # `pulsarjobs outbox relay` in production
            answers = {
                "welcome": post("/signups", {"email": "ada@example.com"}),
                "twice": post("/signups", {"email": "ada@example.com"}),  # unique: rolled back
                "order": post("/orders", {"total": 42}),
                "refused": post("/orders", {"total": 5_000}),
            }
            deadline = time.monotonic() + 30
            while store.lag().pending and time.monotonic() < deadline:
                time.sleep(0.05)
            answers["pending"] = (store.lag().pending, None)
    finally:
        app.close()
        engine.dispose()
    print(json.dumps(answers))


if __name__ == "__main__":
    main(sys.argv[1])
