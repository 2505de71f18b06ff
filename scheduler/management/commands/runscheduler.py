"""`manage.py runscheduler`: the Procfile's scheduler process. Start as many as you like; one leads."""

from __future__ import annotations

from typing import Any

import dramatiq
from django.conf import settings
from django.core.management.base import BaseCommand

from scheduler.jobs import schedule
from scheduler.runner import SchedulerProcess


class Command(BaseCommand):
    help = "Enqueue the periodic jobs of scheduler/jobs.py while this process holds the leader's lease."

    def handle(self, *args: Any, **options: Any) -> None:
        broker = dramatiq.get_broker()
        process = SchedulerProcess(
            jobs=schedule(),
            broker=broker,
            lease_ms=settings.SCHEDULER_LEASE_MS,
            renew_ms=settings.SCHEDULER_LEASE_RENEW_MS,
            lease_name=settings.SCHEDULER_LEASE_NAME,
        )
        process.install_signal_handlers()
        try:
            process.run()
        finally:
            broker.close()
