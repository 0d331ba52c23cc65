"""The shop's jobs, its pulsarjobs App, and its outbox."""

from pulsarjobs import App
from pulsarjobs.outbox import Outbox

app = App()  # PULSARJOBS_SERVICE_URL, PULSARJOBS_NAMESPACE, ... from the environment
outbox = Outbox(app)


@app.job(queue="mail")
def send_welcome(email: str) -> None:
    print(f"welcome mail sent to {email}")


@app.job(queue="mail")
def send_receipt(order_id: int) -> None:
    print(f"receipt for order {order_id} sent")
