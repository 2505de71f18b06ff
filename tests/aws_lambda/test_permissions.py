"""Each function's role in deploy/template.yaml allows every AWS call the function makes.

The functions run here as on Lambda (queues made beforehand, SQS_CREATE_QUEUES=false), against the
test SQS and S3 servers, while every AWS request this process sends is recorded under the function
it was made for; each recorded call must be allowed by one statement of that function's policies.
The local servers enforce no permissions, so without this a missing grant shows only on AWS.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.client
import pytest
from cfnlint.decode import decode
from django.contrib.auth import get_user_model
from django.test import Client

from tests.aws_lambda.event_source import EventSourceMapping
from tests.aws_lambda.events import LambdaContext, host, http_event, reply, sample
from tests.aws_lambda.test_template import TEMPLATE
from tests.aws_lambda.test_web_handler import upload_through_handler
from tests.conftest import project_actors_on
from tests.web.core import example_tasks
from tests.web.exports.conftest import exports_to_s3
from tests.web.images.conftest import jpeg_bytes
from tests.web.trending.fake_github import repository_items, search_body
from web.aws_lambda import scheduler_handler, web_handler, worker_handler
from web.core.enqueue import wait_for_background_sends
from web.exports.models import Export
from web.ops.services import dead_letter_redrive_request

pytestmark = pytest.mark.django_db(transaction=True)

#: Message bodies above this many bytes go through S3 in this test: all of them.
PAYLOAD_THRESHOLD = 64

#: The IAM action an API call needs, where its name is not the action's (AWS's service references).
SQS_ACTIONS = {
    "SendMessageBatch": "sqs:SendMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
S3_ACTIONS = {
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "DeleteObject": "s3:DeleteObject",
}
S3_BUCKET_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
}


@dataclass(frozen=True)
class Need:
    """One permission a call needs: an IAM action on a resource of the template (a key for objects)."""

    action: str
    resource: str
    key: str | None = None


@dataclass
class Recorder:
    """Records every AWS request of this process, from any thread, under the function named."""

    queues: dict[str, str]
    buckets: dict[str, str]
    needs: dict[str, set[Need]] = field(default_factory=dict)
    #: Calls this test cannot map to a permission: listed, not raised, so no caller can swallow them.
    unknown: list[str] = field(default_factory=list)
    _function: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def acting_as(self, function: str) -> Iterator[None]:
        self._function = function
        try:
            yield
        finally:
            self._function = None

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        if self._function is None:
            return
        with self._lock:
            try:
                needs = self._needs(service, operation, params)
            except (KeyError, ValueError) as e:
                self.unknown.append(f"{self._function}: {service}.{operation} ({e!r})")
                return
            self.needs.setdefault(self._function, set()).update(needs)

    def _needs(self, service: str, operation: str, params: dict[str, Any]) -> list[Need]:
        if service == "sqs":
            queue = params.get("QueueName") or params["QueueUrl"].rsplit("/", 1)[-1]
            return [Need(SQS_ACTIONS.get(operation, f"sqs:{operation}"), self.queues[queue])]
        if service == "s3":
            bucket = self.buckets[params["Bucket"]]
            if operation in S3_BUCKET_ACTIONS:
                return [Need(S3_BUCKET_ACTIONS[operation], bucket)]
            if operation == "DeleteObjects":
                return [Need("s3:DeleteObject", bucket, o["Key"]) for o in params["Delete"]["Objects"]]
            if operation not in S3_ACTIONS:
                raise ValueError("no permission known for it: add it to S3_ACTIONS")
            return [Need(S3_ACTIONS[operation], bucket, params["Key"])]
        raise ValueError("no permission known for the service")


@pytest.fixture
def exports_bucket(s3: Any, settings: Any, sqs_endpoint: str, namespace: str) -> Iterator[str]:
    """Exports go to a bucket of this test's own, as EXPORTS_S3_BUCKET has them on Lambda."""
    bucket = f"{namespace}-exports"
    s3.create_bucket(Bucket=bucket)
    exports_to_s3(settings, bucket, sqs_endpoint)
    yield bucket
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=item["Key"])
    s3.delete_bucket(Bucket=bucket)


@pytest.fixture
def recorder(
    monkeypatch: pytest.MonkeyPatch,
    broker: Any,
    namespace: str,
    media_bucket: str,
    exports_bucket: str,
    payload_bucket: str,
) -> Recorder:
    queues = {
        broker.queue_url("default").rsplit("/", 1)[-1]: "DefaultQueue",
        broker.dead_letter_queue_url("default").rsplit("/", 1)[-1]: "DefaultDeadLetterQueue",
    }
    recording = Recorder(
        queues=queues,
        buckets={
            media_bucket: "MediaBucket",
            exports_bucket: "ExportsBucket",
            payload_bucket: "PayloadBucket",
        },
    )
    real = botocore.client.BaseClient._make_api_call

    def recorded(client: Any, operation: str, params: dict[str, Any]) -> Any:
        recording.record(client.meta.service_model.service_name, operation, params)
        return real(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recorded)
    return recording


@pytest.fixture
def function(recorder: Recorder, broker: Any, sqs_endpoint: str, namespace: str, payload_bucket: str) -> Any:
    """`with function(name) as deployed:` runs as that function's own process on Lambda would: the
    project's actors on a broker of its own that only looks the stack's queues up, every AWS call
    recorded under its name (closing the broker's too). Bodies above 64 bytes, all of them, go
    through the payload bucket, so that every path of a large message is taken too."""
    broker.queue_url("default")  # the stack made the queues

    @contextlib.contextmanager
    def running_as(name: str) -> Iterator[Any]:
        with (
            recorder.acting_as(name),
            project_actors_on(
                sqs_endpoint,
                namespace,
                create_queues=False,
                payload_bucket=payload_bucket,
                payload_threshold=PAYLOAD_THRESHOLD,
            ) as deployed,
        ):
            yield deployed

    return running_as


def _template() -> dict[str, Any]:
    parsed, errors = decode(str(TEMPLATE))
    assert not errors, errors
    return parsed


def _resource_of(value: Any) -> tuple[str, str | None]:
    """A statement's Resource as (logical name, object key pattern or None for the resource itself)."""
    if "Fn::GetAtt" in value:
        name, attribute = value["Fn::GetAtt"]
        assert attribute == "Arn", value
        return name, None
    match = re.fullmatch(r"\$\{(\w+)\.Arn\}(?:/(.*))?", value["Fn::Sub"])
    assert match, value
    return match.group(1), match.group(2)


def ungranted(function: str, needs: set[Need]) -> list[Need]:
    """The needs no statement of the function's policies allows."""
    statements = [
        statement
        for policy in _template()["Resources"][function]["Properties"]["Policies"]
        for statement in policy["Statement"]
        if statement["Effect"] == "Allow"
    ]

    def allows(statement: dict[str, Any], need: Need) -> bool:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        if need.action not in actions:
            return False
        for resource in resources:
            name, pattern = _resource_of(resource)
            if name != need.resource:
                continue
            if need.key is None and pattern is None:
                return True
            if (
                need.key is not None
                and pattern is not None
                and re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), need.key)
            ):
                return True
        return False

    return sorted(
        (need for need in needs if not any(allows(s, need) for s in statements)), key=lambda n: repr(n)
    )


def _post(session: str, page: str, action: str) -> Any:
    """What a browser does with a form of `page`: take its CSRF token and cookie, and post to `action`."""
    kind = "http_api_v2"
    form = reply(web_handler(http_event(kind, "GET", page, cookies={"sessionid": session}), LambdaContext()))
    assert form.status == 200, form.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    event = http_event(
        kind,
        "POST",
        action,
        headers={"content-type": "application/x-www-form-urlencoded", "origin": f"https://{host(kind)}"},
        cookies={"sessionid": session, "csrftoken": form.cookies["csrftoken"]},
        body=f"csrfmiddlewaretoken={token}".encode(),
    )
    return reply(web_handler(event, LambdaContext()))


def _staff_cookie() -> str:
    staff = get_user_model().objects.create_user(
        "ops@example.com", "ops@example.com", "irrelevant password 1", is_staff=True
    )
    client = Client()
    client.force_login(staff)
    return client.cookies["sessionid"].value


def test_each_functions_role_allows_every_call_it_makes_on_the_queues_and_buckets(
    recorder, function, broker, session_cookie, lambda_hosts, github
):
    github.answer(200, search_body(repository_items()), {"ETag": '"v1"'})  # the scheduled poll's

    # The site: an upload (the original to S3, its message to SQS), an export asked for.
    with function("WebFunction"):
        assert (
            reply(upload_through_handler("http_api_v2", session_cookie, jpeg_bytes(800, 600))).status == 302
        )
        assert _post(session_cookie, "/exports/", "/exports/start/").status == 302
    # The schedule: the due jobs of the minute.
    with function("SchedulerFunction"):
        scheduler_handler(sample("scheduler"), LambdaContext())
    # The worker: thumbnails, the scheduled jobs, a task that fails into the dead-letter queue.
    example_tasks.fail.enqueue("the disk is full")
    assert wait_for_background_sends()
    with function("WorkerFunction") as deployed:
        EventSourceMapping(deployed.client, deployed.queue_url("default"), worker_handler).run_until_idle()
    assert broker.queue_counts("default")["dead_letters"] == 1
    # The owner downloads the export the worker made, and deletes it; an operator reads the dead
    # letters on /ops/.
    export = Export.objects.get()
    assert export.status == Export.Status.DONE, export.error
    with function("WebFunction"):
        download = http_event(
            "http_api_v2", "GET", f"/exports/{export.pk}/download/", cookies={"sessionid": session_cookie}
        )
        assert reply(web_handler(download, LambdaContext())).status == 200
        assert _post(session_cookie, "/exports/", f"/exports/{export.pk}/delete/").status == 302
        assert not Export.objects.exists()
        cookies = {"sessionid": _staff_cookie()}
        event = http_event("http_api_v2", "GET", "/ops/queues/default/dead-letters/", cookies=cookies)
        page = reply(web_handler(event, LambdaContext()))
        assert page.status == 200, page.text
        assert "the disk is full" in page.text
    # "Retry all" runs on the worker: the dead letter goes back to its queue (and fails again).
    dead_letter_redrive_request(broker=broker, queue_name="default", requested_by="ops@example.com")
    assert wait_for_background_sends()
    with function("WorkerFunction") as deployed:
        EventSourceMapping(deployed.client, deployed.queue_url("default"), worker_handler).run_until_idle()

    redrive_actions = {
        n.action for n in recorder.needs["WorkerFunction"] if n.resource == "DefaultDeadLetterQueue"
    }
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= redrive_actions, "the redrive ran on the worker"
    for name, needs in recorder.needs.items():
        assert "PayloadBucket" in {need.resource for need in needs}, f"{name} sent or read no large message"
    assert recorder.unknown == []
    functions = ("WebFunction", "SchedulerFunction", "WorkerFunction")
    assert {name: ungranted(name, recorder.needs[name]) for name in functions} == {
        name: [] for name in functions
    }
