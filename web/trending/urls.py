from django.urls import path

from web.trending import views

app_name = "trending"
urlpatterns = [
    path("", views.trending, name="trending"),
]
