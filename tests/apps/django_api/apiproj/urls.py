from django.urls import path

from apiproj import views

urlpatterns = [
    path("worker", views.worker),
    path("db", views.db),
    path("spool", views.spool),
    path("rows", views.rows),
    path("mule", views.mule),
]
