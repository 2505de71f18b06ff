from django.urls import path

from web.ops import views

app_name = "ops"
urlpatterns = [
    path("", views.index, name="index"),
    path("queues/", views.queues, name="queues"),
    path("queues/<str:queue_name>/redrive/", views.redrive, name="redrive"),
    path("queues/<str:queue_name>/dead-letters/", views.dead_letters, name="dead_letters"),
    path("queues/<str:queue_name>/dead-letters/<str:dead_letter_id>/", views.dead_letter, name="dead_letter"),
    path(
        "queues/<str:queue_name>/dead-letters/<str:dead_letter_id>/retry/",
        views.dead_letter_retry,
        name="dead_letter_retry",
    ),
    path(
        "queues/<str:queue_name>/dead-letters/<str:dead_letter_id>/delete/",
        views.dead_letter_delete,
        name="dead_letter_delete",
    ),
    path("outbox/<int:row_id>/", views.outbox_set_aside, name="outbox_set_aside"),
]
