"""Four jobs that show what pulsarjobs does with each kind of outcome.

Run a worker on them with:  pulsarjobs worker examples.jobs:app
"""

from __future__ import annotations

import asyncio

from pulsarjobs import App, RetryPolicy, current_job

app = App()

QUICK_RETRIES = RetryPolicy(max_attempts=3, initial_delay=1.0, jitter=0.1)


@app.job
async def send_welcome_email(to: str) -> str:
    await asyncio.sleep(0.05)  # talking to a mail server
    return f"welcome email sent to {to}"


@app.job(queue="default")
def send_reminder(to: str, about: str) -> str:
    return f"reminded {to} about {about}"


@app.job(retry=QUICK_RETRIES)
def charge_card(order_id: str, cents: int) -> str:
    """The payment provider times out twice, then accepts."""
    attempt = current_job().attempt
    if attempt < 3:
        raise TimeoutError(f"payment provider timed out (attempt {attempt})")
    return f"charged {cents / 100:.2f} for order {order_id}"


@app.job(retry=QUICK_RETRIES)
def sync_legacy_inventory(warehouse: str) -> None:
    """A dependency that is down for good: the job ends in the dead-letter topic."""
    raise ConnectionError(f"inventory service for {warehouse} refused the connection")
