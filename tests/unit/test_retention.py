"""How a dead-letter retention is said: in the queues table, by `queues retention`, on the
dashboard — never a silent cap."""

from __future__ import annotations

from datetime import timedelta

from pulsarjobs.operations.retention import KEPT_FOREVER, DeadRetention


def test_no_retention_is_said_to_keep_dead_letters_forever() -> None:
    assert str(KEPT_FOREVER) == "forever"
    assert KEPT_FOREVER.sentence("default") == (
        "Dead letters of default are kept forever: none goes unless replayed or deleted."
    )


def test_an_age_and_a_size_are_both_said() -> None:
    kept = DeadRetention(max_age=timedelta(days=30), max_size=1024**3)
    assert str(kept) == "30d / 1 GiB"
    assert kept.sentence("mail") == (
        "Dead letters of mail are kept 30d / 1 GiB: each is removed 30d after it died; "
        "the oldest are removed past 1 GiB."
    )
    assert str(DeadRetention(max_size=500 * 1024**2)) == "500 MiB"
    assert (
        DeadRetention(max_age=timedelta(hours=12))
        .sentence("q")
        .endswith("kept 12h: each is removed 12h after it died.")
    )
