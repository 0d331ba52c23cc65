"""A small shop's jobs on four queues, for the dashboard's browser tests and the pictures of it in
the docs: names, arguments and errors as a user's would read.

Each run appends a line to the file PULSARJOBS_TEST_RECORD names (tests/apps/pipeline.py's
`record`). `charge_card` always fails and retries in an hour; `sync_inventory` dies at its first
failure until the file PULSARJOBS_TEST_FIX names exists; `render_video` runs for as long as asked,
having said it encoded a quarter of its frames; `ship_order`, a durable job, charges and packs in
steps, then sleeps until the courier's pickup; `await_payment`, another, waits for the signal
`paid:<order id>` and records the payment it got.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

from pulsarjobs.app import App
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.settings import Settings
from pulsarjobs.worker.execution import current_job
from pulsarjobs.workflows.durable import Durable
from tests.apps.pipeline import record

HOURLY_RETRY = RetryPolicy(max_attempts=5, initial_delay=3600, jitter=0.0)
RENDERED_FRAMES, FRAMES = 1800, 7200  # render_video's progress while it runs
PICKUP = timedelta(hours=2)  # ship_order's sleep
PAYMENT_WINDOW = timedelta(days=3)  # how long await_payment waits for its signal


def make_app(settings: Settings) -> App:
    app = App(settings)

    @app.job(queue="emails")
    def send_receipt(order_id: str, address: str) -> None:
        record("start")

    @app.job(queue="images")
    def resize_image(path: str, width: int) -> None:
        record("start")

    @app.job(queue="images")
    async def render_video(video_id: str, seconds: float) -> None:
        record("start")
        current_job().progress(RENDERED_FRAMES, FRAMES, "encoding frames")
        await asyncio.sleep(seconds)
        record("end")

    @app.job(queue="billing", retry=HOURLY_RETRY)
    def charge_card(order_id: str, cents: int) -> None:
        record("start")
        raise ConnectionError("payment gateway timed out after 30 s")

    @app.job(queue="billing", max_attempts=1)
    def sync_inventory(sku: str, warehouse: str) -> None:
        record("start")
        fix = os.environ.get("PULSARJOBS_TEST_FIX")
        if not (fix and os.path.exists(fix)):
            raise ValueError(f"unknown SKU {sku} in warehouse {warehouse}")

    @app.job(queue="images", max_attempts=1)
    def reserve_stock(sku: str, count: int) -> None:
        record("start")
        raise LookupError(f"only {count - 1} of {sku} left")

    async def charge(order_id: str, cents: int) -> dict[str, object]:
        await asyncio.sleep(0.4)  # the card network takes its time
        return {"charge_id": f"ch-{order_id}", "cents": cents}

    def pack(skus: list[str]) -> list[str]:
        return [f"{sku}@shelf-{n}" for n, sku in enumerate(skus, 1)]

    @app.job(queue="images", durable=True)
    async def ship_order(ctx: Durable, order_id: str, cents: int, skus: list[str]) -> None:
        await ctx.step("charge", charge, order_id, cents)
        await ctx.step("pack", pack, skus)
        await ctx.sleep(PICKUP, name="until-pickup")

    @app.job(queue="billing", durable=True)
    async def await_payment(ctx: Durable, order_id: str) -> None:
        payment = await ctx.wait_for(f"paid:{order_id}", PAYMENT_WINDOW, name="payment")
        record("paid", order_id=order_id, payment=payment)

    @app.job(queue="reports")
    def build_report(name: str, day: str) -> None:
        record("start")

    @app.periodic("0 3 * * *", name="nightly_sales_report", queue="reports", missed="skip")
    def nightly_sales_report() -> None:
        record("start")

    @app.periodic("0 */6 * * *", name="refresh_exchange_rates", queue="billing", missed="skip")
    def refresh_exchange_rates() -> None:
        record("start")

    return app


app = make_app(Settings.from_env())
