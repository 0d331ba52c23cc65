from django.urls import path

from examples.frameworks.django_shop import views

urlpatterns = [
    path("signups", views.sign_up),
    path("orders", views.place_order),
]
