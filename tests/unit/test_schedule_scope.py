"""Whose ticks are whose: schedules that differ have ticks and a leader of their own, the same
schedules share them, whichever app declares them and in whatever order."""

from __future__ import annotations

from typing import Any

import pytest

from pulsarjobs import App
from pulsarjobs.scheduling.scope import schedules_scope, tick_keys
from pulsarjobs.settings import Settings
from pulsarjobs.transport.topics import cron_producer_name, scheduler_leader_topic, topic_kind

BEAT = {"name": "beat", "cron": "* * * * *", "queue": "clock", "tz": "UTC", "job": "beat"}


def app_with(*schedules: dict[str, Any]) -> App:
    app = App(Settings(namespace="shop"))
    for spec in schedules:
        job = spec["job"]
        declared = app.jobs.get(job) or app.job(name=job)(lambda *args: None)
        options = {"args": spec.get("args", ()), "missed": spec.get("missed", "skip")}
        app.schedule(
            declared, spec["cron"], name=spec["name"], queue=spec["queue"], tz=spec["tz"], **options
        )
    return app


def test_the_ticks_of_a_schedule_keep_their_name_from_release_to_release() -> None:
    (key,) = tick_keys(app_with(BEAT)).values()
    assert cron_producer_name(key) == "pulsarjobs-cron-beat-9e741d8b67"


@pytest.mark.parametrize(
    "change",
    [
        {"name": "tock"},
        {"cron": "*/2 * * * *"},
        {"queue": "other"},
        {"tz": "Europe/Berlin"},
        {"job": "other"},
    ],
)
def test_schedules_that_differ_in_name_line_queue_zone_or_job_have_ticks_and_a_scope_of_their_own(
    change: dict[str, str],
) -> None:
    one, other = app_with(BEAT), app_with({**BEAT, **change})
    assert set(tick_keys(one).values()).isdisjoint(tick_keys(other).values())
    assert schedules_scope(one) != schedules_scope(other)


def test_arguments_and_missed_policy_are_not_what_makes_the_ticks() -> None:
    one, other = app_with(BEAT), app_with({**BEAT, "args": (1,), "missed": "all"})
    assert tick_keys(one) == tick_keys(other)


def test_the_same_schedules_in_any_order_are_one_scope_and_one_more_makes_another() -> None:
    tock = {**BEAT, "name": "tock", "cron": "0 * * * *"}
    assert schedules_scope(app_with(BEAT, tock)) == schedules_scope(app_with(tock, BEAT))
    assert schedules_scope(app_with(BEAT, tock)) != schedules_scope(app_with(BEAT))


def test_a_scope_has_a_leader_topic_of_its_own_that_says_what_it_is() -> None:
    topic = scheduler_leader_topic(Settings(namespace="shop"), schedules_scope(app_with(BEAT)))
    name = topic.rsplit("/", 1)[-1]
    assert name.startswith("pulsarjobs-scheduler-leader-")
    assert topic_kind(name) == topic_kind("pulsarjobs-scheduler-leader") == "scheduler leader"
