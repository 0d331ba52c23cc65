import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "only-for-the-example")
INSTALLED_APPS = ["examples.frameworks.django_shop.apps.ShopConfig"]
ROOT_URLCONF = "examples.frameworks.django_shop.urls"
USE_TZ = True
ALLOWED_HOSTS = ["*"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",  # or postgresql: the relay reads either
        "NAME": os.environ.get("SHOP_SQLITE", "shop.sqlite3"),
    }
}
