"""Settings of the web apps that web/settings.py may leave out, with their defaults in one place.

    from web.core.conf import setting

    setting("OUTBOX_MAX_ATTEMPTS")   # settings.OUTBOX_MAX_ATTEMPTS, or its default below

Every other setting is read as settings.NAME: web/settings.py defines it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Relay attempts SQS refuses (too large, its queue gone) before an outbox row is set aside for an
    # operator on /ops/. Attempts while SQS cannot be reached at all do not count.
    "OUTBOX_MAX_ATTEMPTS": 10,
    # Sends that outlive their request, per web process; a request beyond this many leaves its
    # messages to the relay at once instead of starting another thread.
    "OUTBOX_MAX_BACKGROUND_SENDS": 8,
    # The GitHub poll reads at most this many bytes of an answer (decompressed). A page of 100 search
    # results, some 80 fields each and most of them URLs, stays well under 1 MB.
    "GITHUB_MAX_RESPONSE_BYTES": 5 * 1024 * 1024,
    # The whole GitHub request, connecting to the last byte, may take this long.
    "GITHUB_DEADLINE_MS": 30_000,
    # Finished exports a user may keep at once; another needs one of them deleted (or expired) first.
    "EXPORT_MAX_KEPT_PER_USER": 10,
}


def setting(name: str) -> Any:
    """settings.<name> when web/settings.py defines it, else its default here."""
    return getattr(settings, name, DEFAULTS[name])
