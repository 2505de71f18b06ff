"""Staff see the task machinery in /admin/ (results, runs, outbox, schedule), and cannot edit what
workers wrote."""

from __future__ import annotations

import pytest

from tests.web.core import example_tasks
from web.ops.models import TaskRun

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_admin_index_lists_the_task_machinery_for_staff(admin_client):
    page = admin_client.get("/admin/").content.decode()

    headings = (
        "Task result records",
        "Outbox messages",
        "Task runs",
        "Dead letter redrives",
        "Scheduled runs",
    )
    for heading in headings:
        assert heading in page
    assert "/admin/django_dramatiq/" not in page, "django_dramatiq's task page is always empty here"


def test_a_task_a_worker_ran_is_listed_with_its_status_and_shown_with_its_return_value(
    admin_client, broker, worker
):
    result = example_tasks.add.enqueue(20, 22)
    broker.join("default", timeout=30_000)

    listing = admin_client.get("/admin/core/taskresultrecord/?status__exact=SUCCESSFUL").content.decode()
    assert result.id in listing
    assert "tests.web.core.example_tasks.add" in listing
    detail = admin_client.get(f"/admin/core/taskresultrecord/{result.id}/change/").content.decode()
    assert '<div class="readonly">42</div>' in detail
    assert 'name="_save"' not in detail, "a result is not editable"

    run = TaskRun.objects.get(message_id=result.id)
    runs = admin_client.get("/admin/ops/taskrun/?q=" + result.id).content.decode()
    assert run.actor_name in runs
    assert "Succeeded" in runs


def test_rows_written_by_workers_cannot_be_added_changed_or_deleted_even_by_a_superuser(
    admin_client, broker, worker
):
    result = example_tasks.add.enqueue(1, 1)
    broker.join("default", timeout=30_000)
    change = f"/admin/core/taskresultrecord/{result.id}/change/"

    assert admin_client.post(change, {"status": "FAILED"}).status_code == 403
    delete = f"/admin/core/taskresultrecord/{result.id}/delete/"
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert admin_client.get("/admin/core/taskresultrecord/add/").status_code == 403
    assert admin_client.get("/admin/core/outboxmessage/add/").status_code == 403
    assert example_tasks.add.get_result(result.id).status == "SUCCESSFUL"


def test_the_admin_is_closed_to_a_user_who_is_not_staff(client, django_user_model):
    address = "reader@example.com"
    user = django_user_model.objects.create_user(address, address, "a long password 1")
    client.force_login(user)

    response = client.get("/admin/core/taskresultrecord/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
