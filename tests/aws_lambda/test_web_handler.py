"""web_handler: the site behind API Gateway, an ALB or a function URL, called with AWS-shaped events."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from PIL import Image as PILImage

from tests.aws_lambda.events import KINDS, LambdaContext, host, http_event, reply, sample
from tests.web.images.conftest import jpeg_bytes
from web.aws_lambda import MAX_RESPONSE_BYTES, web_handler
from web.core.enqueue import wait_for_background_sends
from web.core.models import OutboxMessage
from web.images.models import Image

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def queued_messages(broker, queue_name: str = "default") -> list[dict]:
    """Every message waiting in the queue (taken off it for a minute), as dramatiq wrote it."""
    url = broker.queue_url(queue_name)
    found = []
    while True:
        got = broker.client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        if not got.get("Messages"):
            return found
        found.extend(json.loads(m["Body"]) for m in got["Messages"])


def upload_through_handler(kind: str, session: str, photo: bytes) -> dict:
    """What a browser does: fetch the upload form (and its CSRF cookie), then post the file."""
    context = LambdaContext()
    form = reply(web_handler(http_event(kind, "GET", "/images/", cookies={"sessionid": session}), context))
    assert form.status == 200, form.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    body = encode_multipart(
        BOUNDARY,
        {"csrfmiddlewaretoken": token, "image": SimpleUploadedFile("photo.jpg", photo, "image/jpeg")},
    )
    event = http_event(
        kind,
        "POST",
        "/images/",
        headers={"content-type": MULTIPART_CONTENT, "origin": f"https://{host(kind)}"},
        cookies={"sessionid": session, "csrftoken": form.cookies["csrftoken"]},
        body=body,
    )
    return web_handler(event, context)


def test_an_upload_through_the_http_api_is_stored_and_its_message_is_in_sqs_when_the_handler_returns(
    broker, media_bucket, s3, session_cookie, lambda_hosts, settings
):
    # The request itself does not wait for SQS at all: only the handler's own wait can make this pass.
    settings.OUTBOX_SEND_WAIT_MS = 0
    photo = jpeg_bytes(1200, 800)

    answer = reply(upload_through_handler("http_api_v2", session_cookie, photo))

    assert wait_for_background_sends(timeout_ms=0), "a send was still running when the handler returned"
    image = Image.objects.get()
    assert (answer.status, answer.headers["location"]) == (302, f"/images/{image.pk}/")
    assert [(m["actor_name"], m["kwargs"]) for m in queued_messages(broker)] == [
        ("make_thumbnails", {"image_id": image.pk})
    ]
    assert not OutboxMessage.objects.exists(), "SQS took the message, so the outbox keeps no copy"
    stored = s3.get_object(Bucket=media_bucket, Key=f"media/{image.original.name}")["Body"].read()
    assert stored == photo


@pytest.mark.parametrize("kind", KINDS)
def test_a_page_comes_back_as_text_and_an_original_image_as_base64_for_every_kind_of_caller(
    kind, broker, media_bucket, owner, session_cookie, lambda_hosts
):
    photo = jpeg_bytes(640, 480)
    assert reply(upload_through_handler(kind, session_cookie, photo)).status == 302
    image = Image.objects.get()
    cookies = {"sessionid": session_cookie}

    page = reply(
        web_handler(http_event(kind, "GET", f"/images/{image.pk}/", cookies=cookies), LambdaContext())
    )
    original = reply(
        web_handler(
            http_event(kind, "GET", f"/images/{image.pk}/original/", cookies=cookies), LambdaContext()
        )
    )

    assert (page.status, page.base64_encoded) == (200, False)
    assert owner.email in page.text
    assert "Making thumbnails" in page.text
    assert (original.status, original.base64_encoded) == (200, True)
    assert original.headers["content-type"] == "image/jpeg"
    assert 'filename="photo.jpg"' in original.headers["content-disposition"]
    assert original.body == photo


def test_a_response_too_large_for_lambda_becomes_a_clear_error_instead_of_a_failed_invocation(
    broker, media_bucket, owner, session_cookie, lambda_hosts
):
    # Noise does not compress: a JPEG of it is larger than Lambda can return once base64-encoded.
    # (Too large to upload through Lambda as well: it came in another way, the long-running site's.)
    noise = PILImage.frombytes("RGB", (2000, 1800), random.Random(7).randbytes(2000 * 1800 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "JPEG", quality=98)
    photo = buffer.getvalue()
    assert MAX_RESPONSE_BYTES * 3 // 4 < len(photo) < 30 * 1024 * 1024
    client = Client()
    client.force_login(owner)
    assert (
        client.post("/images/", {"image": SimpleUploadedFile("big.jpg", photo, "image/jpeg")}).status_code
        == 302
    )
    image = Image.objects.get()

    answer = reply(
        web_handler(
            http_event(
                "http_api_v2", "GET", f"/images/{image.pk}/original/", cookies={"sessionid": session_cookie}
            ),
            LambdaContext(),
        )
    )

    assert answer.status == 502
    assert answer.headers["content-type"].startswith("text/plain")
    assert "too large to send from AWS Lambda" in answer.text


def test_an_event_that_is_no_http_request_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="answers HTTP requests from API Gateway") as refused:
        web_handler(sample("scheduler"), LambdaContext())

    assert "scheduledTime" in str(refused.value)


def test_a_stylesheet_and_a_script_are_served_from_the_collected_static_files_as_deployed(
    tmp_path, sqs_endpoint
):
    static_root = tmp_path / "static"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.aws_lambda.production_settings",
        "OFFLOAD_TEST_STATIC_ROOT": str(static_root),
        "DEBUG": "false",
        "SECRET_KEY": "a test key that is long enough to be accepted by the checks " * 2,
        "ALLOWED_HOSTS": ".lambda-url.eu-west-1.on.aws",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SQS_ENDPOINT_URL": sqs_endpoint,
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    manifest = json.loads((static_root / "staticfiles.json").read_text())["paths"]
    css, js = manifest["web/site.css"], manifest["vendor/htmx/htmx.min.js"]
    events = [
        http_event("function_url", "GET", "/"),
        http_event("function_url", "GET", f"/static/{css}", headers={"accept-encoding": "identity"}),
        http_event("function_url", "GET", f"/static/{js}", headers={"accept-encoding": "gzip"}),
    ]
    run = subprocess.run(
        [sys.executable, "-m", "tests.aws_lambda.invoke", "web_handler"],
        input=json.dumps(events),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    home, stylesheet, script = (reply(r) for r in json.loads(run.stdout.splitlines()[-1]))

    assert home.status == 200
    assert f'href="/static/{css}"' in home.text
    assert (stylesheet.status, stylesheet.base64_encoded) == (200, False)
    assert stylesheet.headers["content-type"].startswith("text/css")
    assert stylesheet.body == (static_root / css).read_bytes()
    assert "immutable" in stylesheet.headers["cache-control"]
    assert (script.status, script.headers["content-encoding"], script.base64_encoded) == (200, "gzip", True)
    assert gzip.decompress(script.body) == (static_root / js).read_bytes()
