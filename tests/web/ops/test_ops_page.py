import re

import dramatiq
import pytest
from django.contrib.auth import get_user_model

from brokers import SQSBroker
from tests.conftest import project_actors_on
from tests.waiting import wait_until
from tests.web.ops.conftest import closed_port
from web.ops.models import DeadLetterRedrive


def _dead_letter_ids(page: str) -> list[str]:
    return re.findall(r'/ops/queues/default/dead-letters/([0-9a-f-]+)/"', page)


@pytest.mark.django_db(transaction=True)
def test_retry_all_sends_the_dead_letters_back_in_the_background_and_the_page_says_how_it_went(
    admin_client, broker, dead_confirmation, mail_server_down, mailbox
):
    first, second = dead_confirmation("a"), dead_confirmation("b")
    page = admin_client.get("/ops/").content.decode()
    assert "Show dead letters" in page
    assert "Retry all" in page
    assert broker.queue_counts("default")["dead_letters"] == 2

    mail_server_down()  # ...is over: the mail server is back
    response = admin_client.post("/ops/queues/default/redrive/", follow=True)

    assert (
        "A worker is sending every dead letter of default back to be tried again" in response.content.decode()
    )
    assert mailbox.wait_for(first)["Subject"] == "Confirm your offload account"
    assert mailbox.wait_for(second)["Subject"] == "Confirm your offload account"
    redrive = wait_until(
        lambda: DeadLetterRedrive.objects.filter(status=DeadLetterRedrive.Status.DONE).first()
    )
    assert (redrive.queue_name, redrive.moved, redrive.requested_by) == ("default", 2, "admin")
    fragment = admin_client.get("/ops/queues/").content.decode()
    assert re.search(
        r"<td>default</td>\s*<td>admin</td>.*?Done</span></td>\s*<td class=\"num\">2</td>", fragment, re.S
    )


@pytest.mark.django_db(transaction=True)
def test_the_dead_letters_page_lists_each_with_actor_reason_attempts_and_when(
    admin_client, dead_confirmation
):
    dead_confirmation()

    page = admin_client.get("/ops/queues/default/dead-letters/").content.decode()

    assert "About 1 dead letter in the queue." in page
    row = re.search(r'<tr>\s*<td><a href="/ops/queues/default/dead-letters/.*?</tr>', page, re.S).group(0)
    assert ">send_confirmation_email</a>" in row
    assert "<strong>ConnectionRefusedError</strong>: [Errno 111] Connection refused" in row
    assert '<td class="num">1</td>' in row
    assert re.search(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</td>", row)
    assert "nobody else sees them" in page  # what looking at dead letters does on SQS


@pytest.mark.django_db(transaction=True)
def test_a_dead_letter_has_a_page_with_its_body_options_and_traceback(admin_client, dead_confirmation):
    address = dead_confirmation()
    user_id = get_user_model().objects.get(email=address).pk
    [dead_letter_id] = _dead_letter_ids(
        admin_client.get("/ops/queues/default/dead-letters/").content.decode()
    )

    page = admin_client.get(f"/ops/queues/default/dead-letters/{dead_letter_id}/").content.decode()

    assert "<h1>Dead letter: send_confirmation_email</h1>" in page
    assert f"&quot;user_id&quot;: {user_id}" in page
    assert "&quot;max_retries&quot;: 0" in page  # an option it was sent with
    assert "Traceback (most recent call last)" in page
    assert "ConnectionRefusedError" in page


@pytest.mark.django_db(transaction=True)
def test_retrying_one_dead_letter_runs_it_and_leaves_the_other(
    admin_client, broker, dead_confirmation, mail_server_down, mailbox
):
    retried, kept = dead_confirmation("retried"), dead_confirmation("kept")
    page = admin_client.get("/ops/queues/default/dead-letters/").content.decode()
    rows = re.findall(r"dead-letters/([0-9a-f-]+)/retry/", page)
    assert len(rows) == 2
    mail_server_down()  # ...is over
    by_address = {}
    for dead_letter_id in rows:
        body = admin_client.get(f"/ops/queues/default/dead-letters/{dead_letter_id}/").content.decode()
        user_id = int(re.search(r"&quot;user_id&quot;: (\d+)", body).group(1))
        by_address[get_user_model().objects.get(pk=user_id).email] = dead_letter_id

    response = admin_client.post(
        f"/ops/queues/default/dead-letters/{by_address[retried]}/retry/", follow=True
    )

    assert (
        "Sent the send_confirmation_email message back to default to be tried again."
        in response.content.decode()
    )
    assert mailbox.wait_for(retried)["Subject"] == "Confirm your offload account"
    broker.join("default", timeout=10_000)
    assert mailbox.count(kept) == 0
    assert _dead_letter_ids(admin_client.get("/ops/queues/default/dead-letters/").content.decode()) == [
        by_address[kept]
    ]


@pytest.mark.django_db(transaction=True)
def test_deleting_a_dead_letter_removes_it_for_good(admin_client, broker, dead_confirmation):
    dead_confirmation()
    [dead_letter_id] = _dead_letter_ids(
        admin_client.get("/ops/queues/default/dead-letters/").content.decode()
    )

    response = admin_client.post(f"/ops/queues/default/dead-letters/{dead_letter_id}/delete/", follow=True)

    assert "Deleted the send_confirmation_email dead letter; it will not run." in response.content.decode()
    assert "No dead letters." in admin_client.get("/ops/queues/default/dead-letters/").content.decode()
    assert broker.queue_counts("default")["dead_letters"] == 0
    again = admin_client.post(f"/ops/queues/default/dead-letters/{dead_letter_id}/delete/", follow=True)
    assert "That dead letter is no longer in the dead-letter queue" in again.content.decode()
    missing = admin_client.get(f"/ops/queues/default/dead-letters/{dead_letter_id}/")
    assert missing.status_code == 404
    assert "That dead letter is no longer in the dead-letter queue" in missing.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_queue_nobody_declared_has_no_dead_letter_pages(admin_client, broker):
    assert admin_client.get("/ops/queues/nope/dead-letters/").status_code == 404
    assert admin_client.post("/ops/queues/nope/redrive/").status_code == 404
    assert admin_client.post("/ops/queues/nope/dead-letters/x/retry/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_when_sqs_cannot_be_reached_the_pages_say_so_plainly(admin_client, namespace):
    with project_actors_on(f"http://127.0.0.1:{closed_port()}", namespace):
        index = admin_client.get("/ops/")
        dead_letters = admin_client.get("/ops/queues/default/dead-letters/")
        retry = admin_client.post("/ops/queues/default/dead-letters/some-id/retry/", follow=True)

    assert index.status_code == 200
    assert (
        "SQS (or S3, for a message stored there) could not be reached. Nothing was changed"
        in index.content.decode()
    )
    assert dead_letters.status_code == 503
    assert "could not be reached" in dead_letters.content.decode()
    assert "could not be reached" in retry.content.decode()
    for page in (index, dead_letters, retry):
        assert "Traceback" not in page.content.decode()
        assert "EndpointConnectionError" not in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_queue_missing_from_sqs_where_queues_may_not_be_created_is_named_as_such(
    admin_client, sqs_endpoint, namespace
):
    broker = SQSBroker(
        namespace=namespace, endpoint_url=sqs_endpoint, region_name="us-east-1", create_queues=False
    )
    broker.declare_queue("default")
    previous = dramatiq.get_broker()
    dramatiq.set_broker(broker)
    try:
        page = admin_client.get("/ops/queues/default/dead-letters/").content.decode()
    finally:
        dramatiq.set_broker(previous)
        broker.close()

    assert "The queue does not exist in SQS, and this deployment may not create queues" in page


@pytest.mark.django_db(transaction=True)
def test_the_ops_pages_are_for_staff_only_and_show_them_nothing(client, broker, dead_confirmation):
    dead_confirmation()
    dead_letter_id = broker.dead_letters.peek(broker.queue("default"))[0].id
    user = get_user_model().objects.create_user("plain@example.com", "plain@example.com", "x")
    client.force_login(user)
    base = "/ops/queues/default/dead-letters/"

    for method, url in [
        ("get", "/ops/"),
        ("get", "/ops/queues/"),
        ("get", base),
        ("get", f"{base}{dead_letter_id}/"),
        ("post", f"{base}{dead_letter_id}/retry/"),
        ("post", f"{base}{dead_letter_id}/delete/"),
        ("post", "/ops/queues/default/redrive/"),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert "login" in response["Location"]
        assert b"ConnectionRefusedError" not in response.content

    assert broker.queue_counts("default")["dead_letters"] == 1
    assert not DeadLetterRedrive.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_second_retry_all_while_one_is_under_way_says_so_and_starts_nothing(admin_client, broker):
    first = admin_client.post("/ops/queues/default/redrive/", follow=True).content.decode()
    second = admin_client.post("/ops/queues/default/redrive/", follow=True).content.decode()

    assert "A worker is sending every dead letter of default back" in first
    assert "already under way (asked for by admin)" in second
    assert DeadLetterRedrive.objects.count() == 1
