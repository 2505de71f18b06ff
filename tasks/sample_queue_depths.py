"""Record every queue's depth for the /ops/ chart (enqueued every minute by the scheduler)."""

import dramatiq

from web.ops.services import queue_depth_sample

#: A sample taken later than this after it was asked for is dropped: the next minute's is due.
MAX_AGE_MS = 2 * 60 * 1000


# Ahead of other work a worker already holds (lower runs first), no retries: a lost sample is a gap.
@dramatiq.actor(max_retries=0, max_age=MAX_AGE_MS, priority=-10)
def sample_queue_depths() -> None:
    queue_depth_sample(broker=dramatiq.get_broker())
