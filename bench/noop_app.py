"""No-op jobs for the drain benchmark."""

from pulsarjobs import App

app = App()


@app.job
async def noop_async(n: int) -> None:
    return None


@app.job
def noop_sync(n: int) -> None:
    return None
