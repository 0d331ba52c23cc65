"""The launcher restarts a broker that came up in Pulsar's bookie-registration loop."""

from __future__ import annotations

from pulsarjobs.broker.launcher import registration_loop

PATH = "/ledgers/available/127.0.0.1:41379"
LOOP_TURN = f"""\
INFO  [metadata-store-1-1] ResourceLockImpl - Successfully re-acquired lock at {PATH}
INFO  [metadata-store-1-1] PulsarRegistrationClient - Bookie 127.0.0.1:41379 created. path: {PATH}
INFO  [metadata-store-1-1] ResourceLockImpl - Lock on resource {PATH} was invalidated. state Valid
INFO  [metadata-store-1-1] AbstractMetadataStore - Deleting path: {PATH} (v. Optional[0])
"""
START_AFTER_A_KILL = f"""\
INFO  [main] BKCluster - Starting new bookie on port: 41379
INFO  [BookieStateManagerService-0] ResourceLockImpl - Successfully re-acquired missing lock {PATH}
INFO  [metadata-store-1-1] ResourceLockImpl - Lock on resource {PATH} was invalidated. state Valid
INFO  [metadata-store-1-1] ResourceLockImpl - Successfully revalidated the lock on {PATH}
INFO  [main] PulsarService - Starting Pulsar Broker service; version: '4.0.7'
"""


def test_a_broker_repeating_its_bookie_registration_is_recognised() -> None:
    assert registration_loop(START_AFTER_A_KILL + LOOP_TURN * 500)


def test_a_start_that_revalidates_its_registration_once_is_normal() -> None:
    assert not registration_loop(START_AFTER_A_KILL)
    assert not registration_loop("")


def test_other_locks_being_revalidated_do_not_count() -> None:
    other = LOOP_TURN.replace("/ledgers/available/127.0.0.1:41379", "/namespace/public/a")
    assert not registration_loop(other * 500)
