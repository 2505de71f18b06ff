"""The web's /metrics: who may read it, and what a scrape shows after real requests and real messages."""

from __future__ import annotations

import datetime
from typing import Any

import boto3
import pytest
from django.test import Client
from django.utils import timezone

from tasks.echo import echo
from tests.web.metrics.scrapes import Samples, new_token, parse, total, value
from web.core.models import OutboxMessage


@pytest.fixture
def token(settings: Any) -> str:
    settings.METRICS_TOKEN = new_token()
    return settings.METRICS_TOKEN


def scrape(client: Client, token: str) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return parse(response.content.decode())


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Basic {token}", "{token}", "Bearer {token}x", "Bearer "],
    ids=["none", "wrong token", "other scheme", "no scheme", "token with more", "empty"],
)
def test_a_scrape_without_the_right_token_gets_the_sites_ordinary_404(client, token, authorization):
    headers = {"Authorization": authorization.format(token=token)} if authorization else {}

    response = client.get("/metrics", headers=headers)

    assert response.status_code == 404
    assert b"offload_" not in response.content


def test_metrics_is_a_404_for_everyone_while_no_token_is_set(client, settings):
    settings.METRICS_TOKEN = None

    for authorization in ["Bearer None", "Bearer ", f"Bearer {new_token()}"]:
        assert client.get("/metrics", headers={"Authorization": authorization}).status_code == 404


def test_a_strangers_post_gets_the_same_404_and_the_token_holder_a_405(client, token):
    assert client.post("/metrics").status_code == 404
    assert client.post("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 405


@pytest.mark.django_db
def test_the_scrape_counts_the_requests_the_site_answered_by_view_and_status(client, token):
    before = scrape(client, token)

    client.get("/")
    client.get("/")
    client.get("/no-such-page/")
    after = scrape(client, token)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("offload_http_requests_total", method="GET", view="home", status="200") == 2
    assert grew("offload_http_requests_total", method="GET", view="(unresolved)", status="404") == 1
    assert grew("offload_http_request_duration_seconds_count", method="GET", view="home") == 2
    # The first scrape itself was answered and counted too.
    assert grew("offload_http_requests_total", method="GET", view="metrics", status="200") == 1


@pytest.mark.django_db
def test_the_scrape_shows_each_queues_messages_by_state_and_the_outbox_backlog(client, token, broker):
    for n in range(3):
        echo.send(f"waiting {n}")
    echo.send_with_options(args=("later",), delay=60_000)
    sqs = boto3.client("sqs", endpoint_url=broker.client.meta.endpoint_url, region_name="us-east-1")
    sqs.receive_message(QueueUrl=broker.queue_url("default"), MaxNumberOfMessages=1, VisibilityTimeout=60)
    sqs.send_message(QueueUrl=broker.dead_letter_queue_url("default"), MessageBody='{"set": "aside"}')
    in_an_hour = timezone.now() + datetime.timedelta(hours=1)
    for n in range(2):
        OutboxMessage.objects.create(
            queue_name="default", actor_name="echo", message_id=f"m{n}", body="{}", available_at=in_an_hour
        )
    OutboxMessage.objects.create(
        queue_name="default", actor_name="echo", message_id="refused", body="{}",
        available_at=in_an_hour, set_aside_at=timezone.now(), last_error="MessageTooLarge",
    )  # fmt: skip

    samples = scrape(client, token)

    depth = {
        state: value(samples, "offload_queue_messages", queue="default", state=state)
        for state in ("visible", "in_flight", "delayed", "dead_letters")
    }
    assert depth == {"visible": 2, "in_flight": 1, "delayed": 1, "dead_letters": 1}
    assert value(samples, "offload_outbox_backlog") == 2
    assert value(samples, "offload_outbox_set_aside") == 1


@pytest.mark.django_db
def test_queue_depths_are_read_from_sqs_once_per_period_however_often_prometheus_scrapes(
    client, token, broker, settings
):
    settings.METRICS_QUEUE_CACHE_MS = 60 * 60 * 1000
    queues = len(broker.get_declared_queues())
    for name in broker.get_declared_queues():
        broker.queue_url(name)  # looked up (or created) before counting: that reads attributes too
    reads = broker.stats.get("GetQueueAttributes", 0)

    first = scrape(client, token)
    echo.send("after the first scrape")
    later = [scrape(client, token) for _ in range(3)]

    # One read of each queue and of its dead-letter queue, for four scrapes.
    assert broker.stats.get("GetQueueAttributes", 0) - reads == 2 * queues
    assert all(value(s, "offload_queue_messages", queue="default", state="visible") == 0 for s in later)

    settings.METRICS_QUEUE_CACHE_MS = 0  # the period is over
    assert value(scrape(client, token), "offload_queue_messages", queue="default", state="visible") == 1
    assert value(first, "offload_queue_messages", queue="default", state="dead_letters") == 0


@pytest.mark.django_db
def test_the_scrape_shows_the_sqs_requests_this_process_made_by_action(client, token, broker, settings):
    settings.METRICS_QUEUE_CACHE_MS = 60 * 60 * 1000
    made_before = broker.stats
    before = scrape(client, token)

    for n in range(4):
        echo.send(f"counted {n}")
    after = scrape(client, token)

    made = {action: count - made_before.get(action, 0) for action, count in broker.stats.items()}
    shown = {
        action: total(after, "offload_sqs_requests_total", action=action)
        - total(before, "offload_sqs_requests_total", action=action)
        for action in made
    }
    assert shown == made
    assert shown["SendMessage"] == 4  # a lone send outside a batch is one SendMessage
    assert shown["GetQueueAttributes"] >= 2  # the first scrape's own reads of the queue depths
