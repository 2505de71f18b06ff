from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.prune_expired_exports import prune_expired_exports
from tests.web.exports.conftest import finished_export
from web.exports.models import Export
from web.exports.services import ABANDONED, export_prune_expired

pytestmark = pytest.mark.usefixtures("export_dir")


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user(username=f"u{uuid.uuid4().hex[:8]}", password="pw-123456!")


@pytest.mark.django_db(transaction=True)
def test_the_prune_delivered_twice_deletes_expired_exports_and_their_files_once(
    broker, worker, owner, export_dir
):
    expired = finished_export(owner, export_dir, expires_in=-timedelta(minutes=1))
    kept = finished_export(owner, export_dir, expires_in=timedelta(hours=1))
    message = prune_expired_exports.message()

    broker.enqueue(message)
    broker.enqueue(message)
    broker.join(prune_expired_exports.queue_name, timeout=30_000)

    assert list(Export.objects.all()) == [kept]
    assert not (export_dir / expired.file_name).exists()
    assert (export_dir / kept.file_name).exists()


@pytest.mark.django_db
def test_an_export_whose_file_is_already_gone_is_still_pruned(owner, export_dir):
    export = finished_export(owner, export_dir, expires_in=-timedelta(minutes=1))
    (export_dir / export.file_name).unlink()

    assert export_prune_expired() == 1
    assert export_prune_expired() == 0
    assert not Export.objects.exists()


@pytest.mark.django_db
def test_a_stuck_export_is_given_up_and_a_long_failed_one_deleted(owner, settings):
    settings.EXPORT_STALE_AFTER_MS = 60_000
    now = timezone.now()
    stuck = Export.objects.create(
        owner=owner,
        created_at=now - timedelta(hours=2),
        updated_at=now - timedelta(hours=1),
        status=Export.Status.RUNNING,
    )
    old_failure = Export.objects.create(
        owner=owner,
        created_at=now - timedelta(days=30),
        finished_at=now - timedelta(days=30),
        status=Export.Status.FAILED,
        error="boom",
    )

    export_prune_expired()

    stuck.refresh_from_db()
    assert stuck.status == Export.Status.FAILED
    assert stuck.error == ABANDONED
    assert not Export.objects.filter(pk=old_failure.pk).exists()
