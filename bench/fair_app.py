"""The jobs of `bench.fair_cost`: one no-op on a plain queue, the same on a fair queue, its key
one of KEYS by its argument."""

from __future__ import annotations

import os

from pulsarjobs import App, Settings

KEYS = int(os.environ.get("BENCH_FAIR_KEYS", "100"))  # keys the fair jobs are spread over
PLAIN, FAIR = "plain", "fair"


def make_app(settings: Settings) -> App:
    app = App(settings)

    @app.job(queue=PLAIN)
    async def plain_noop(n: int) -> None: ...

    @app.job(queue=FAIR, fair_key=lambda n: f"key-{n % KEYS}")
    async def fair_noop(n: int) -> None: ...

    return app


app = make_app(Settings.from_env())
