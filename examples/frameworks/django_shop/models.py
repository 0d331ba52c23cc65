from django.db import connection, models

from examples.frameworks.django_shop.jobs import outbox
from pulsarjobs import JobCall
from pulsarjobs.outbox import NOTIFY_CHANNEL


class Customer(models.Model):
    email = models.EmailField(unique=True)


class Order(models.Model):
    total = models.IntegerField()


class OutboxRow(models.Model):
    """pulsarjobs' outbox table (`pulsarjobs.outbox.metadata`), written through Django."""

    job_id = models.CharField(max_length=64)
    topic = models.TextField()
    payload = models.BinaryField()
    properties = models.JSONField()
    message_key = models.TextField(null=True)
    deliver_at = models.DateTimeField(null=True)
    unique_key = models.TextField(null=True)
    unique_for = models.FloatField(null=True)
    created_at = models.DateTimeField()
    sequence_id = models.BigIntegerField(null=True)
    published_at = models.DateTimeField(null=True)
    duplicate_of = models.CharField(max_length=64, null=True)

    class Meta:
        db_table = "pulsarjobs_outbox"
        managed = False  # created with the rest of pulsarjobs' table: see the docs


def enqueue_in_transaction(call: JobCall) -> str:
    """Write the job into the current transaction: published once it commits, never if it
    rolls back."""
    rows = outbox.rows([call])
    OutboxRow.objects.bulk_create(OutboxRow(**row) for row in rows)
    if connection.vendor == "postgresql":  # wakes the relay at once, on commit
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [NOTIFY_CHANNEL])
    return rows[0]["job_id"]
