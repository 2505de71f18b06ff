"""Send a queue's dead letters back to it: an operator's "retry all" on /ops/, run in the background."""

import dramatiq

from web.ops.services import dead_letter_redrive_run


@dramatiq.actor(max_retries=3, min_backoff=10_000)
def redrive_dead_letters(redrive_id: int) -> None:
    dead_letter_redrive_run(broker=dramatiq.get_broker(), redrive_id=redrive_id)
