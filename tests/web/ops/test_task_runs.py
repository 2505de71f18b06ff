import socket
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone

from tasks.make_thumbnails import make_thumbnails
from tasks.prune_task_runs import prune_task_runs
from tasks.send_confirmation_email import send_confirmation_email
from tests.web.images.conftest import jpeg_bytes
from web.images.models import Image
from web.ops.models import TaskRun


def _inactive_user(address: str):
    return get_user_model().objects.create_user(address, address, "irrelevant password 1", is_active=False)


@pytest.mark.django_db(transaction=True)
def test_a_confirmation_message_delivered_twice_sends_one_mail(broker, worker, mailbox, namespace):
    address = f"{namespace}@example.com"
    message = send_confirmation_email.message(user_id=_inactive_user(address).pk)

    broker.enqueue(message)
    broker.join(message.queue_name, timeout=10_000)
    broker.enqueue(message)  # what SQS does when it delivers a message again
    broker.join(message.queue_name, timeout=10_000)

    assert mailbox.count(address) == 1
    run = TaskRun.objects.get(message_id=message.message_id)
    assert (run.status, run.attempts, run.duplicates) == (TaskRun.Status.SUCCEEDED, 1, 1)


@pytest.mark.django_db(transaction=True)
def test_a_thumbnail_message_delivered_twice_makes_the_thumbnails_once(
    broker, worker, namespace, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    owner = _inactive_user(f"{namespace}@example.com")
    image = Image(owner=owner, original_name="a.jpg", format="JPEG", width=900, height=600, size_bytes=1)
    image.original.save("original", ContentFile(jpeg_bytes(900, 600)))
    message = make_thumbnails.message(image_id=image.pk)

    broker.enqueue(message)
    broker.join(message.queue_name, timeout=10_000)
    first = {
        t.size: (t.pk, t.file.name, (tmp_path / t.file.name).stat().st_mtime_ns)
        for t in image.thumbnails.all()
    }
    broker.enqueue(message)
    broker.join(message.queue_name, timeout=10_000)

    again = {
        t.size: (t.pk, t.file.name, (tmp_path / t.file.name).stat().st_mtime_ns)
        for t in image.thumbnails.all()
    }
    assert set(first) == {128, 512, 1024}
    assert again == first
    assert TaskRun.objects.get(message_id=message.message_id).duplicates == 1


@pytest.mark.django_db(transaction=True)
def test_a_failed_run_records_its_error_attempts_and_duration(broker, worker, settings, namespace):
    with socket.socket() as probe:  # a port nobody listens on: the mail server is down
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": closed_port, "use_tls": False, "timeout": 2},
        }
    }
    user = _inactive_user(f"{namespace}@example.com")

    message = send_confirmation_email.send_with_options(kwargs={"user_id": user.pk}, max_retries=0)
    broker.join(message.queue_name, timeout=10_000)

    run = TaskRun.objects.get(message_id=message.message_id)
    assert run.actor_name == "send_confirmation_email"
    assert run.status == TaskRun.Status.FAILED
    assert run.attempts == 1
    assert "ConnectionRefusedError" in run.error
    assert run.finished_at >= run.started_at
    assert run.duration_ms is not None


@pytest.mark.django_db(transaction=True)
def test_prune_task_runs_deletes_only_records_older_than_the_retention(broker, worker, settings):
    settings.TASK_RUN_RETENTION_DAYS = 30
    now = timezone.now()
    for message_id, age in (("old", timedelta(days=31)), ("recent", timedelta(days=29))):
        TaskRun.objects.create(
            message_id=message_id,
            actor_name="echo",
            queue_name="default",
            status=TaskRun.Status.SUCCEEDED,
            started_at=now - age,
            finished_at=now - age,
        )

    message = prune_task_runs.send()
    broker.join(message.queue_name, timeout=10_000)

    remaining = set(TaskRun.objects.values_list("message_id", flat=True))
    assert "old" not in remaining
    assert {"recent", message.message_id} <= remaining
