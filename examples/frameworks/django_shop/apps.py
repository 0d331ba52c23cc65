import atexit

from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "examples.frameworks.django_shop"
    label = "shop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from examples.frameworks.django_shop.jobs import app

        atexit.register(app.close)  # the App connects at its first enqueue
