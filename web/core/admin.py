"""The admin's view of the task machinery: task results and the outbox, to look at, never to edit.

What these rows say is written by the workers and the relay; an edit by hand would contradict SQS
(a result marked successful whose message still runs, an outbox row changed under a relay that holds
it). Set-aside outbox rows are sent again or discarded on /ops/, which goes through the services.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django_dramatiq.models import Task

from web.core.models import OutboxMessage, TaskResultRecord

# django_dramatiq's own "Tasks" page fills only with its AdminMiddleware, which the workers do not
# run (task runs are recorded as TaskRun, below in ops): an always empty page would mislead.
if admin.site.is_registered(Task):
    admin.site.unregister(Task)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists, filters and shows rows; adding, changing and deleting are refused (403) for everyone."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TaskResultRecord)
class TaskResultRecordAdmin(ReadOnlyAdmin):
    list_display = ["id", "task_path", "queue_name", "status", "enqueued_at", "finished_at"]
    list_filter = ["status", "queue_name", "task_path"]
    search_fields = ["id", "task_path"]
    date_hierarchy = "enqueued_at"


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    # The body is the whole message (up to SQS's limit, or an S3 payload's size): not a page to show.
    exclude = ["body"]
    list_display = ["message_id", "actor_name", "queue_name", "created_at", "attempts", "set_aside_at"]
    list_filter = ["queue_name", "actor_name"]
    search_fields = ["message_id", "actor_name"]
