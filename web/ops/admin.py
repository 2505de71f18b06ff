"""The admin's view of what the workers ran and of operators' redrives: read-only, like /ops/ shows them."""

from __future__ import annotations

from django.contrib import admin

from web.core.admin import ReadOnlyAdmin
from web.ops.models import DeadLetterRedrive, TaskRun


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyAdmin):
    list_display = [
        "message_id",
        "actor_name",
        "queue_name",
        "status",
        "attempts",
        "started_at",
        "duration_ms",
    ]
    list_filter = ["status", "actor_name", "queue_name"]
    search_fields = ["message_id", "actor_name"]
    date_hierarchy = "started_at"


@admin.register(DeadLetterRedrive)
class DeadLetterRedriveAdmin(ReadOnlyAdmin):
    list_display = ["queue_name", "requested_by", "requested_at", "status", "moved", "finished_at"]
    list_filter = ["status", "queue_name"]
