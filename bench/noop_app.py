"""The pulsarjobs jobs of the benchmarks: no-ops, and no-ops that stamp when they start."""

from bench.record import stamp
from pulsarjobs import App

app = App()


@app.job
async def noop_async(n: int) -> None:
    return None


@app.job
def noop_sync(n: int) -> None:
    return None


@app.job
async def latency_async(sent_ns: int) -> None:
    stamp(sent_ns)


@app.job
async def scheduled_async(run_at_ns: int) -> None:
    stamp(run_at_ns)
