"""Delete expired exports and their files, and give up on stuck ones (enqueued daily by the scheduler)."""

from __future__ import annotations

import dramatiq

from web.exports.services import export_prune_expired


@dramatiq.actor(max_retries=3)
def prune_expired_exports() -> None:
    export_prune_expired()
