from django.urls import path

from apiproj import views

urlpatterns = [
    path("worker", views.worker),
    path("db", views.db),
]
