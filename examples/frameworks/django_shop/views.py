import json
from functools import partial

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from examples.frameworks.django_shop.jobs import send_receipt, send_welcome
from examples.frameworks.django_shop.models import Customer, Order, enqueue_in_transaction

CREDIT_LIMIT = 1_000


@csrf_exempt
@require_POST
def sign_up(request: HttpRequest) -> JsonResponse:
    email = json.loads(request.body)["email"]
    with transaction.atomic():
        customer = Customer.objects.create(email=email)
        # Enqueued once the customer is committed; never if it rolls back. A crash between
        # the commit and the enqueue loses the mail: the outbox (below) closes that gap.
        transaction.on_commit(partial(send_welcome.enqueue, customer.email))
    return JsonResponse({"customer": customer.id})


@csrf_exempt
@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    total = json.loads(request.body)["total"]
    try:
        with transaction.atomic():
            order = Order.objects.create(total=total)
            job_id = enqueue_in_transaction(send_receipt.call(order.id))
            if total > CREDIT_LIMIT:  # rolls back the order and its receipt job
                raise OverLimit
    except OverLimit:
        return JsonResponse({"error": "over the credit limit"}, status=402)
    return JsonResponse({"order": order.id, "receipt_job": job_id})


class OverLimit(Exception):
    pass
