from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.export_csv import export_csv
from tests.waiting import sent_and_done
from tests.web.exports.conftest import finished_export
from web.exports.models import Export
from web.exports.services import COLUMNS
from web.reports.demo_data import demo_history_create
from web.trending.models import RepositorySnapshot


def download(client, export: Export) -> list[dict[str, str]]:
    response = client.get(f"/exports/{export.pk}/download/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment;" in response["Content-Disposition"]
    body = b"".join(response.streaming_content)
    response.close()
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


def stored_rows() -> set[tuple[str, ...]]:
    return {
        (str(poll_id), str(rank), name, str(stars))
        for poll_id, rank, name, stars in RepositorySnapshot.objects.values_list(
            "poll_id", "rank", "full_name", "stars"
        )
    }


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/exports/")

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.django_db
def test_a_user_without_exports_sees_the_start_button_and_an_empty_list(client, user):
    client.force_login(user)

    page = client.get("/exports/").content.decode()

    assert "Export snapshot history as CSV" in page
    assert "You have no exports yet." in page


@pytest.mark.django_db(transaction=True)
def test_an_export_runs_in_a_worker_and_its_owner_downloads_every_row(client, user, broker, worker):
    demo_history_create(polls=3, end=timezone.now())
    client.force_login(user)

    started = client.post("/exports/start/", follow=True).content.decode()
    sent_and_done(broker, export_csv)
    page = client.get("/exports/").content.decode()

    assert "Your export has started" in started
    assert '<progress max="100"' in started  # the worker may already be under way
    assert '<progress max="100" value="100"' in page
    assert "300 of 300 rows" in page
    assert "Download CSV" in page
    rows = download(client, Export.objects.get())
    assert list(rows[0]) == list(COLUMNS)
    assert {(r["poll_id"], r["rank"], r["full_name"], r["stars"]) for r in rows} == stored_rows()
    assert any(not r["full_name"].isascii() for r in rows)
    assert any("\n" in r["description"] and '"' in r["description"] for r in rows)
    assert any(r["language"] == "" for r in rows)


@pytest.mark.django_db(transaction=True)
def test_an_export_to_s3_is_stored_in_the_bucket_and_downloaded_through_the_site(
    client, user, broker, worker, s3_export_storage
):
    s3, bucket = s3_export_storage
    demo_history_create(polls=2, end=timezone.now())
    client.force_login(user)

    client.post("/exports/start/")
    sent_and_done(broker, export_csv)

    export = Export.objects.get()
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"exports/{export.file_name}"]
    assert len(download(client, export)) == 200


@pytest.mark.django_db
def test_only_the_owner_can_see_or_download_an_export(client, user, other_user):
    export = Export.objects.create(
        owner=user, created_at=timezone.now(), status=Export.Status.DONE, file_name="x.csv"
    )
    client.force_login(other_user)

    assert client.get(f"/exports/{export.pk}/download/").status_code == 404
    assert client.get(f"/exports/{export.pk}/row/").status_code == 404
    assert f'id="export-{export.pk}"' not in client.get("/exports/").content.decode()


@pytest.mark.django_db
def test_an_unfinished_export_cannot_be_downloaded_yet(client, user):
    export = Export.objects.create(owner=user, created_at=timezone.now(), status=Export.Status.RUNNING)
    client.force_login(user)

    assert client.get(f"/exports/{export.pk}/download/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_starting_again_while_an_export_runs_shows_the_running_one_instead(client, user, broker):
    client.force_login(user)

    client.post("/exports/start/")
    page = client.post("/exports/start/", follow=True).content.decode()

    assert Export.objects.count() == 1
    assert "Your previous export is still running" in page


@pytest.mark.django_db
def test_a_running_row_polls_for_progress_and_a_finished_one_stops(client, user):
    export = Export.objects.create(
        owner=user, created_at=timezone.now(), status=Export.Status.RUNNING, rows_total=400, rows_written=100
    )
    client.force_login(user)

    running = client.get(f"/exports/{export.pk}/row/").content.decode()
    export.status, export.rows_written = Export.Status.FAILED, 200
    export.error = "ClientError: NoSuchBucket"
    export.save()
    failed = client.get(f"/exports/{export.pk}/row/").content.decode()

    assert 'hx-trigger="every 1s"' in running
    assert '<progress max="100" value="25"' in running
    assert "100 of 400 rows" in running
    assert "hx-get" not in failed
    assert "Something went wrong while writing this export. Start a new one." in failed
    assert "NoSuchBucket" not in failed, "the cause is for operators, not on the page"


@pytest.mark.django_db(transaction=True)
def test_an_export_whose_worker_died_does_not_block_a_new_one(client, user, broker, settings):
    settings.EXPORT_STALE_AFTER_MS = 60_000
    now = timezone.now()
    stuck = Export.objects.create(
        owner=user,
        created_at=now - timedelta(hours=1),
        updated_at=now - timedelta(minutes=5),
        status=Export.Status.RUNNING,
        rows_total=1000,
        rows_written=400,
    )
    client.force_login(user)

    page = client.post("/exports/start/", follow=True).content.decode()

    stuck.refresh_from_db()
    assert "Your export has started" in page
    assert stuck.status == Export.Status.FAILED
    assert "The worker stopped while writing this export" in page
    assert Export.objects.filter(status=Export.Status.QUEUED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_failed_export_says_so_plainly_to_its_owner_and_its_cause_shows_on_ops(
    client, admin_client, user, broker, worker, settings, sqs_endpoint
):
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "no-such-bucket",
                "endpoint_url": sqs_endpoint,
                "region_name": "us-east-1",
                "addressing_style": "path",
            },
        },
    }
    demo_history_create(polls=1, end=timezone.now())
    export = Export.objects.create(owner=user, created_at=timezone.now())
    client.force_login(user)

    export_csv.send_with_options(kwargs={"export_id": export.pk}, max_retries=0)
    broker.join(export_csv.queue_name, timeout=30_000)

    page = client.get("/exports/").content.decode()
    assert "Something went wrong while writing this export. Start a new one." in page
    assert "NoSuchBucket" not in page
    assert "NoSuchBucket" in admin_client.get("/ops/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_at_the_cap_of_kept_exports_the_page_says_to_delete_one_and_deleting_one_makes_room(
    client, user, broker, settings, local_export_storage
):
    settings.EXPORT_MAX_KEPT_PER_USER = 2
    oldest = finished_export(user, local_export_storage)
    finished_export(user, local_export_storage)
    client.force_login(user)

    refused = client.post("/exports/start/", follow=True).content.decode()

    assert "You already keep 2 finished exports, the most allowed." in refused
    assert "Delete one you no longer need to start another." in refused
    assert "You keep 2 of at most 2 finished exports: delete one to start another." in refused
    assert Export.objects.count() == 2

    deleted = client.post(f"/exports/{oldest.pk}/delete/", follow=True).content.decode()
    assert "The export and its file are deleted." in deleted
    assert not (local_export_storage / oldest.file_name).exists()
    started = client.post("/exports/start/", follow=True).content.decode()
    assert "Your export has started" in started
    assert Export.objects.filter(status=Export.Status.QUEUED).count() == 1


@pytest.mark.django_db
def test_only_the_owner_can_delete_an_export_and_never_one_being_written(
    client, user, other_user, local_export_storage
):
    kept = finished_export(user, local_export_storage)
    running = Export.objects.create(owner=user, created_at=timezone.now(), status=Export.Status.RUNNING)

    client.force_login(other_user)
    assert client.post(f"/exports/{kept.pk}/delete/").status_code == 404
    client.force_login(user)
    assert client.post(f"/exports/{running.pk}/delete/").status_code == 404

    assert Export.objects.count() == 2
    assert (local_export_storage / kept.file_name).exists()
