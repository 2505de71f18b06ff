from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.tasks import TaskResultStatus
from dramatiq import Message

from tasks.run_django_task import run_django_task
from tasks.send_account_exists_email import send_account_exists_email
from web.core.models import TaskResultRecord

PASSWORD = "a long and unusual passphrase 42"


@pytest.mark.django_db(transaction=True)
def test_the_account_exists_mail_is_a_django_task_whose_result_says_a_mail_went_out(
    client, broker, worker, mailbox, namespace
):
    address = f"{namespace}@example.com"
    get_user_model().objects.create_user(address, address, PASSWORD)

    client.post("/accounts/signup/", {"email": address, "password": "another passphrase 7"})
    mailbox.wait_for(address)
    broker.join("default", timeout=30_000)

    record = TaskResultRecord.objects.get(task_path=send_account_exists_email.module_path)
    result = send_account_exists_email.get_result(record.id)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value is True
    assert result.kwargs == {"user_id": get_user_model().objects.get(email=address).pk}


@pytest.mark.django_db(transaction=True)
def test_the_account_exists_mail_delivered_twice_is_sent_once(client, broker, worker, mailbox, namespace):
    address = f"{namespace}@example.com"
    get_user_model().objects.create_user(address, address, PASSWORD)
    client.post("/accounts/signup/", {"email": address, "password": "another passphrase 7"})
    mailbox.wait_for(address)
    broker.join("default", timeout=30_000)
    result_id = TaskResultRecord.objects.get().id

    # SQS delivers at least once: the same message again.
    again = Message(
        queue_name="default",
        actor_name=run_django_task.actor_name,
        args=(),
        kwargs={"result_id": result_id},
        options={},
        message_id=result_id,
    )
    broker.enqueue(again)
    broker.join("default", timeout=30_000)

    assert mailbox.count(address) == 1
    assert send_account_exists_email.get_result(result_id).attempts == 1
