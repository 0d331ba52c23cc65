import os
from urllib.parse import urlsplit

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "only-for-the-example")
INSTALLED_APPS = ["examples.frameworks.django_shop.apps.ShopConfig"]
ROOT_URLCONF = "examples.frameworks.django_shop.urls"
USE_TZ = True
ALLOWED_HOSTS = ["*"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_SQLITE", "shop.sqlite3"),
    }
}
if postgres := os.environ.get("SHOP_POSTGRES"):  # postgresql://user:password@host:port/shop
    url = urlsplit(postgres)
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.path.lstrip("/"),
        "USER": url.username or "",
        "PASSWORD": url.password or "",
        "HOST": url.hostname or "",
        "PORT": str(url.port or ""),
    }
