"""The admin's view of the scheduler: who leads, and which slots were enqueued. Read-only: the lease and
the (job, slot) rows are what keeps two schedulers from enqueuing a slot twice."""

from __future__ import annotations

from django.contrib import admin

from scheduler.models import ScheduledRun, SchedulerLease
from web.core.admin import ReadOnlyAdmin


@admin.register(ScheduledRun)
class ScheduledRunAdmin(ReadOnlyAdmin):
    list_display = ["job", "slot", "status", "holder", "enqueued_at", "message_id"]
    list_filter = ["job", "status"]
    date_hierarchy = "slot"


@admin.register(SchedulerLease)
class SchedulerLeaseAdmin(ReadOnlyAdmin):
    list_display = ["name", "holder", "acquired_at", "renewed_at", "expires_at"]
