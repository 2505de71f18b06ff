"""Delete task-run records older than TASK_RUN_RETENTION_DAYS (enqueued daily by the scheduler)."""

from datetime import timedelta

import dramatiq
from django.conf import settings

from web.ops.services import task_run_prune


@dramatiq.actor(max_retries=3)
def prune_task_runs() -> None:
    task_run_prune(older_than=timedelta(days=settings.TASK_RUN_RETENTION_DAYS))
