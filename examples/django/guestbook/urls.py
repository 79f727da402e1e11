from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("whoami", views.whoami, name="whoami"),
    path("async", views.hello_async, name="hello_async"),
]
