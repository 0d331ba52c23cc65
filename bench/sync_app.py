"""An app of plain `def` jobs only, as most Python job code is: its worker runs them on runner
threads that take jobs from the feed themselves (bench/noop_app.py mixes both kinds)."""

from pulsarjobs import App

app = App()


@app.job
def noop_sync(n: int) -> None:
    return None
