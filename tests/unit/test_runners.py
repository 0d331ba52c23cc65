"""Runner threads are joined with or without a time limit."""

from __future__ import annotations

import math
import threading

from pulsarjobs.worker._runners import join_all


def test_threads_are_joined_without_a_time_limit() -> None:
    """A quiet worker waits for its running jobs however long they take, then closes its
    consumers: an unlimited wait must not raise (Thread.join(inf) raises OverflowError)."""
    release = threading.Event()
    threads = [threading.Thread(target=release.wait) for _ in range(3)]
    for thread in threads:
        thread.start()
    threading.Timer(0.2, release.set).start()
    join_all(threads, math.inf)
    assert not any(thread.is_alive() for thread in threads)
