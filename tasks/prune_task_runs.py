"""Delete task-run records older than TASK_RUN_RETENTION_DAYS, and django.tasks results that finished
more than TASK_RESULT_RETENTION_DAYS ago (enqueued daily by the scheduler)."""

from datetime import timedelta

import dramatiq
from django.conf import settings

from web.core.task_results import task_result_prune
from web.ops.services import task_run_prune


@dramatiq.actor(max_retries=3)
def prune_task_runs() -> None:
    task_run_prune(older_than=timedelta(days=settings.TASK_RUN_RETENTION_DAYS))
    task_result_prune(older_than=timedelta(days=settings.TASK_RESULT_RETENTION_DAYS))
