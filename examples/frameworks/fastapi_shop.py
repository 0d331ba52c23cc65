"""A FastAPI service: the App opened and closed with the service, a job enqueued from a
handler, and one written through the outbox in the request's database transaction."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pulsarjobs import App
from pulsarjobs.outbox import Outbox, metadata

jobs = App()  # PULSARJOBS_SERVICE_URL, PULSARJOBS_NAMESPACE, ... from the environment
outbox = Outbox(jobs)


@jobs.job(queue="mail")
def send_welcome(email: str) -> None:
    print(f"welcome mail sent to {email}")


@jobs.job(queue="mail")
def send_receipt(order_id: int) -> None:
    print(f"receipt for order {order_id} sent")


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    total: Mapped[int]


DATABASE = os.environ["SHOP_DATABASE"]  # postgresql+psycopg://user:password@host/shop
database = create_async_engine(DATABASE)  # psycopg serves asyncio and threads alike
sessions = async_sessionmaker(database, expire_on_commit=False)  # read after commit
CREDIT_LIMIT = 1_000


@asynccontextmanager
async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
    engine = sa.create_engine(DATABASE)
    Base.metadata.create_all(engine)  # in production: your migrations (Alembic)
    metadata.create_all(engine)  # the outbox table
    try:
        with outbox.relay(engine):  # or `pulsarjobs outbox relay` beside the service
            yield
    finally:
        jobs.close()  # the App's producers and client
        engine.dispose()
        await database.dispose()


api = FastAPI(lifespan=lifespan)


class Signup(BaseModel):
    email: str


class NewOrder(BaseModel):
    total: int


@api.post("/signups")
async def sign_up(signup: Signup) -> dict[str, str]:
    job_id = await send_welcome.enqueue_async(signup.email)  # stored by the broker when it returns
    return {"welcome_job": job_id}


@api.post("/orders")
async def place_order(new: NewOrder) -> dict[str, int | str]:
    async with sessions() as session, session.begin():  # commits at the end of the block
        order = Order(total=new.total)
        session.add(order)
        await session.flush()  # gives the order its id
        job_id = await outbox.enqueue_async(session, send_receipt.call(order.id))
        if order.total > CREDIT_LIMIT:  # raising rolls back the order and its receipt job
            raise HTTPException(402, "over the credit limit")
    return {"order": order.id, "receipt_job": job_id}
