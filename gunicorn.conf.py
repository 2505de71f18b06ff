"""gunicorn reads this file from the working directory when it starts (the Procfile's web process)."""

import os


def on_starting(server: object) -> None:
    """Load the settings in the master process, before any worker is forked.

    Wrong settings (no SECRET_KEY in production, say) then stop gunicorn with their one line, instead
    of failing in every worker at once, which gunicorn reports with tracebacks of its own shutdown.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
    from django.conf import settings

    settings.SECRET_KEY  # noqa: B018 (reading a setting loads the settings module)
    if settings.METRICS_TOKEN:
        from web.metrics.exposition import use_run_directory

        # Before any worker is forked: each counts its requests in this run's directory, and
        # /metrics, whichever worker answers it, sums them all.
        use_run_directory(settings.METRICS_DIR, kind="web", owner=os.getpid())
