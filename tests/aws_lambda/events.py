"""Lambda events for the handlers' tests, made from the samples in events/ (shaped as AWS documents them).

Each builder copies one sample and changes only what a request changes: method, path, query, headers,
cookies and body. `reply()` reads any of the four response shapes back into one form. `sqs_record()`
copies a record of the SQS samples and changes only what a message changes: its id, body, queue and
delivery count.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

SAMPLES = Path(__file__).parent / "events"

#: The request kinds web_handler takes, by the sample each is built from.
KINDS = ("http_api_v2", "rest_api_v1", "alb", "function_url")


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def host(kind: str) -> str:
    """The Host header of a kind's sample: what ALLOWED_HOSTS must accept."""
    event = sample(kind)
    headers = event["headers"]
    return headers.get("host") or headers["Host"]


def http_event(
    kind: str,
    method: str,
    path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    cookies: dict[str, str] | None = None,
    body: bytes | None = None,
) -> dict[str, Any]:
    """A request as the given kind of caller sends it; a body is sent base64-encoded, as binary bodies are."""
    builders = {
        "http_api_v2": _v2,
        "function_url": _v2,
        "rest_api_v1": _rest_v1,
        "alb": _alb,
    }
    event = sample(kind)
    extra = {k.lower(): v for k, v in (headers or {}).items()}
    if body is not None:
        extra["content-length"] = str(len(body))
    return builders[kind](event, method, path, query, extra, cookies or {}, body)


def _encoded(event: dict[str, Any], body: bytes | None) -> None:
    if body is None:
        event["body"] = None if "resource" in event else ""
        event["isBase64Encoded"] = False
    else:
        event["body"] = base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = True


def _v2(event, method, path, query, headers, cookies, body):
    event["rawPath"] = path
    event["rawQueryString"] = query
    event["requestContext"]["http"]["method"] = method
    event["requestContext"]["http"]["path"] = path
    event["cookies"] = [f"{name}={value}" for name, value in cookies.items()]
    if query:
        event["queryStringParameters"] = dict(parse_qsl(query))
    event["headers"].update(headers)
    _encoded(event, body)
    return event


def _rest_v1(event, method, path, query, headers, cookies, body):
    event["path"] = path
    event["httpMethod"] = method
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    event["requestContext"]["httpMethod"] = method
    event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
    if query:
        pairs = parse_qsl(query)
        event["queryStringParameters"] = dict(pairs)
        event["multiValueQueryStringParameters"] = {k: [v for n, v in pairs if n == k] for k, _ in pairs}
    if cookies:
        headers = {**headers, "cookie": "; ".join(f"{n}={v}" for n, v in cookies.items())}
    for name, value in headers.items():
        canonical = "-".join(part.capitalize() for part in name.split("-"))
        event["headers"][canonical] = value
        event["multiValueHeaders"][canonical] = [value]
    _encoded(event, body)
    return event


def _alb(event, method, path, query, headers, cookies, body):
    event["httpMethod"] = method
    event["path"] = path
    event["queryStringParameters"] = dict(parse_qsl(query))
    if cookies:
        headers = {**headers, "cookie": "; ".join(f"{n}={v}" for n, v in cookies.items())}
    event["headers"].update(headers)
    _encoded(event, body)
    return event


def sqs_record(
    body: str,
    *,
    queue_arn: str,
    kind: str = "sqs_standard",
    index: int = 0,
    receive_count: int = 1,
    message_id: str | None = None,
) -> dict[str, Any]:
    """Record `index` of an SQS sample ("sqs_standard" or "sqs_fifo") carrying `body` from `queue_arn`."""
    record = sample(kind)["Records"][index]
    record["messageId"] = message_id or str(uuid.uuid4())
    record["body"] = body
    record["md5OfBody"] = hashlib.md5(body.encode("utf-8")).hexdigest()  # noqa: S324 (SQS's own checksum)
    record["eventSourceARN"] = queue_arn
    record["awsRegion"] = queue_arn.split(":")[3]
    record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return record


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def failures(answer: dict[str, Any]) -> list[str]:
    """The message ids a worker_handler answer reports as failed."""
    return [item["itemIdentifier"] for item in answer["batchItemFailures"]]


@dataclass
class Reply:
    """A handler's answer, whatever the event kind: status, headers (lower-case), cookies, body bytes."""

    status: int
    headers: dict[str, str]
    cookies: dict[str, str]
    body: bytes
    base64_encoded: bool
    raw: dict[str, Any] = field(repr=False)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def reply(response: dict[str, Any]) -> Reply:
    headers: dict[str, str] = {}
    set_cookies: list[str] = list(response.get("cookies") or [])
    for name, value in (response.get("headers") or {}).items():
        headers[name.lower()] = value
        if name.lower() == "set-cookie":
            set_cookies.append(value)
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = values[-1]
        if name.lower() == "set-cookie":
            set_cookies.extend(values)
    cookies = {}
    for line in set_cookies:
        name, _, rest = line.partition("=")
        cookies[name.strip()] = rest.split(";", 1)[0]
    encoded = bool(response.get("isBase64Encoded"))
    raw_body = response.get("body") or ""
    body = base64.b64decode(raw_body) if encoded else raw_body.encode("utf-8")
    return Reply(response["statusCode"], headers, cookies, body, encoded, copy.deepcopy(response))


class LambdaContext:
    """The parts of Lambda's context object the handlers read."""

    function_name = "offload-test"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:210987654321:function:offload-test"

    def __init__(self, request_id: str = "3f1f9c5e-0c4e-4b8e-9d1a-6a0f7e2b5c11", budget_ms: int = 30_000):
        self.aws_request_id = request_id
        self._budget_ms = budget_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._budget_ms
