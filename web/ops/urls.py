from django.urls import path

from web.ops import views

app_name = "ops"
urlpatterns = [
    path("", views.index, name="index"),
    path("queues/", views.queues, name="queues"),
    path("queues/<str:queue_name>/redrive/", views.redrive, name="redrive"),
    path("outbox/<int:row_id>/", views.outbox_set_aside, name="outbox_set_aside"),
]
