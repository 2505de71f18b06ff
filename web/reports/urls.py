from django.urls import path

from web.reports import views

app_name = "reports"
urlpatterns = [
    path("", views.report, name="report"),
    path("status/", views.status, name="status"),
    path("regenerate/", views.regenerate, name="regenerate"),
]
