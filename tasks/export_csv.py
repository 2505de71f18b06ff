"""Write a user's CSV export of the snapshot history into storage."""

from __future__ import annotations

import dramatiq

from web.exports.services import export_write

#: A million rows take well under a minute; this only stops an export that hangs.
TIME_LIMIT_MS = 60 * 60 * 1000


@dramatiq.actor(max_retries=3, min_backoff=2_000, time_limit=TIME_LIMIT_MS)
def export_csv(export_id: int) -> None:
    export_write(export_id=export_id)
