"""Run one `django.tasks` task enqueued through SQSTaskBackend (web/core/django_tasks.py).

The message carries only the stored result's id; retries, backoff and the time limit come from its
own options, set at enqueue from the task and the backend's OPTIONS.
"""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import CurrentMessage

from web.core.task_results import task_result_run


# max_retries=0 is only the fallback: every message names its own, 0 unless the task asks for more.
@dramatiq.actor(max_retries=0)
def run_django_task(result_id: str) -> None:
    task_result_run(result_id=result_id, last_attempt=_last_attempt())


def _last_attempt() -> bool:
    """Whether dramatiq's Retries will give up if this attempt fails (it decides the same way)."""
    message = CurrentMessage.get_current_message()
    if message is None:  # run outside a worker: assume no retry follows
        return True
    max_retries = message.options.get("max_retries", run_django_task.options.get("max_retries", 0))
    return int(message.options.get("retries", 0)) >= int(max_retries)


def declare_django_task_queues(broker: dramatiq.Broker) -> None:
    """Declare every queue the SQSTaskBackends of settings.TASKS send to, so workers consume them."""
    from django.tasks import task_backends

    from web.core.django_tasks import SQSTaskBackend

    for backend in task_backends.all():
        if isinstance(backend, SQSTaskBackend):
            for queue_name in sorted(backend.dramatiq_queues()):
                broker.declare_queue(queue_name)


declare_django_task_queues(run_django_task.broker)
