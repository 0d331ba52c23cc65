"""One of the processes that call the debounced jobs of test_debounce_kill.py:

    python -m tests.reliability.debounce_calls CALLER CALLS SECONDS

makes CALLS calls, alternately of `reindex_last` and `reindex_first`, spread over SECONDS, each
recorded once its enqueue returned (an event "called"). It says it is ready (a file
`ready-CALLER` in the record's directory) and waits for the file `go` there, so that all callers
call at once, whenever each could start."""

from __future__ import annotations

import sys
import time

from tests.reliability.app import app, recorder


def main(caller: int, calls: int, seconds: float) -> None:
    jobs = (app.jobs["reindex_last"], app.jobs["reindex_first"])
    app.debounces.windows()  # connected, the table read: the first call is as quick as the rest
    directory = recorder().directory
    (directory / f"ready-{caller}").touch()
    while not (directory / "go").exists():
        time.sleep(0.01)
    start = time.monotonic()
    for n in range(calls):
        time.sleep(max(0.0, start + n * seconds / calls - time.monotonic()))
        job = jobs[n % 2]
        job_id = job.enqueue(caller, n)
        recorder().event("called", job=job_id, type=job.name, caller=caller, n=n, at=time.time())
    app.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
