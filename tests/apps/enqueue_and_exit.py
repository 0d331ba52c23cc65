"""A producer script as users write one: enqueue jobs in chunks, then return from __main__
without closing the app. Settings come from PULSARJOBS_* variables.

    python -m tests.apps.enqueue_and_exit TOTAL CHUNK
"""

from __future__ import annotations

import sys

from pulsarjobs import App

app = App()


@app.job
def noop(n: int) -> None:
    pass


if __name__ == "__main__":
    total, chunk = int(sys.argv[1]), int(sys.argv[2])
    for start in range(0, total, chunk):
        app.enqueue_many([noop.call(n) for n in range(start, min(start + chunk, total))])
