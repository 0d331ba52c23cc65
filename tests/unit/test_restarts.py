"""A worker process that keeps dying young is started again ever more slowly."""

from pulsarjobs.processes import HEALTHY_AFTER_S, RESTART_MAX_DELAY_S, Restarts


def test_the_delay_grows_while_processes_die_young_and_resets_after_a_healthy_run() -> None:
    restarts = Restarts()
    delays = [restarts.delay_after(lived_seconds=0.3) for _ in range(10)]
    assert delays[:4] == [0.0, 0.5, 1.0, 2.0]  # the first death costs nothing
    assert delays[-1] == RESTART_MAX_DELAY_S
    assert restarts.delay_after(lived_seconds=HEALTHY_AFTER_S) == 0.0
