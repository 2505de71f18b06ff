"""A dramatiq middleware that records every run and turns a repeated delivery into a no-op."""

from __future__ import annotations

import logging
from typing import Any

from dramatiq import Broker, Middleware
from dramatiq.middleware import SkipMessage

logger = logging.getLogger(__name__)


class TaskRuns(Middleware):
    """Records each message's run (web.ops.models.TaskRun); skips repeats for actors that ask.

    SQS delivers at least once, so a message can arrive again after it ran. For an actor declared
    with `skip_repeats=True`, a second delivery of a message that already succeeded is acknowledged
    without running the actor (the message id is the key). Two deliveries racing each other both
    run, so the services behind the actors are idempotent as well; skip_repeats is for effects
    that cannot be checked afterwards, such as a sent mail. List it before Retries, so its
    after-hook sees whether Retries gave up.
    """

    actor_options = {"skip_repeats"}

    def before_process_message(self, broker: Broker, message: Any) -> None:
        from web.ops.services import task_run_start

        try:
            run = task_run_start(
                message_id=message.message_id,
                actor_name=message.actor_name,
                queue_name=message.queue_name,
                skip_repeats=self._skips_repeats(broker, message),
            )
        except Exception:
            # Recording must never stop the work itself.
            logger.warning("Could not record the start of message %r.", message.message_id, exc_info=True)
            return
        if run is None:
            logger.info("Message %r already succeeded; skipping this repeated delivery.", message.message_id)
            message.options["offload_duplicate"] = True
            raise SkipMessage(f"Message {message.message_id} already succeeded.")

    @staticmethod
    def _skips_repeats(broker: Broker, message: Any) -> bool:
        actor = broker.get_actor(message.actor_name)
        return bool(message.options.get("skip_repeats", actor.options.get("skip_repeats", False)))

    def after_process_message(
        self, broker: Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        from web.ops.models import TaskRun

        if exception is None:
            status, error = TaskRun.Status.SUCCEEDED, ""
        else:
            status = TaskRun.Status.FAILED if message.failed else TaskRun.Status.RETRYING
            error = f"{type(exception).__name__}: {exception}"
        self._finish(message, status, error)

    def after_skip_message(self, broker: Broker, message: Any) -> None:
        from web.ops.models import TaskRun

        if not message.options.pop("offload_duplicate", False):
            self._finish(message, TaskRun.Status.SKIPPED, "")

    def _finish(self, message: Any, status: str, error: str) -> None:
        from web.ops.services import task_run_finish

        try:
            task_run_finish(message_id=message.message_id, status=status, error=error)
        except Exception:
            logger.warning("Could not record the end of message %r.", message.message_id, exc_info=True)
