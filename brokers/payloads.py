"""Messages larger than SQS takes, through S3, in the format of AWS's SQS Extended Client.

A message whose body and attributes add up to more than the threshold is stored as an S3 object
(its UTF-8 body under a uuid4 key), and SQS carries a pointer to it: the body
`["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"...","s3Key":"..."}]` and the
Number attribute `ExtendedPayloadSize`, the payload's size in bytes. That is what the Extended Client
(Java and Python) writes and reads, so its producers can feed our actors and its consumers can read
our messages. Received pointers are recognised by their body, with either class name and in any JSON
spacing, and by the size attribute under either name (the legacy `SQSLargePayloadSize` too).

An object lives as long as a message points to it. Hops and dead letters send the same pointer
again; retries and redrives are new messages with new objects. The object is deleted only after SQS
has deleted the last message that points to it (the ack's DeleteMessageBatch succeeded), in a
background thread, so a slow S3 never delays the heartbeats; a delete that never happens (a crash,
S3 unreachable) leaves the object to the bucket's lifecycle rule.

Nothing here knows the consumer: `resolve()` and `delete_after_success()` serve any place that
receives messages itself, such as a Lambda handler.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from dramatiq.errors import ConnectionClosed

from brokers.errors import MalformedMessage, PayloadError, PayloadMissing
from brokers.queues import Queue

logger = logging.getLogger(__name__)

#: The pointer class the Extended Client writes (payload-offloading-java-common-lib-for-aws).
POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
#: The class name older Extended Clients write; still accepted.
LEGACY_POINTER_CLASS = "com.amazon.sqs.javamessaging.MessageS3Pointer"
#: The Number attribute holding the payload's size in bytes; its presence marks a pointer.
SIZE_ATTRIBUTE = "ExtendedPayloadSize"
#: The name older Extended Clients (and Java's by default) give that attribute; still accepted.
LEGACY_SIZE_ATTRIBUTE = "SQSLargePayloadSize"
#: The largest message SQS takes, and so the highest threshold (sqs-quotas-messages).
MAX_MESSAGE_BYTES = 1_048_576
#: S3 bucket names: 3-63 lowercase letters, digits, dots and hyphens (bucketnamingrules).
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_POINTER_CLASSES = {POINTER_CLASS, LEGACY_POINTER_CLASS}
_SIZE_ATTRIBUTES = (SIZE_ATTRIBUTE, LEGACY_SIZE_ATTRIBUTE)
_MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
_CONNECTION_ERRORS = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.ResponseStreamingError,
)
#: Attempts per S3 request in botocore's `standard` retry mode.
MAX_ATTEMPTS = 4
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60
#: Longest wait on close for deletes still queued.
CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Pointer:
    """Where a message's payload is in S3, and its size in bytes when known."""

    bucket: str
    key: str
    size: int | None = None

    @property
    def body(self) -> str:
        """The SQS body that points here, compact as the Java client writes it."""
        return json.dumps(
            [POINTER_CLASS, {"s3BucketName": self.bucket, "s3Key": self.key}], separators=(",", ":")
        )

    def attributes(self) -> dict[str, Any]:
        """The SQS message attributes that mark the pointer (none while the size is unknown)."""
        if self.size is None:
            return {}
        return {SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(self.size)}}

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_pointer(body: str, attributes: Mapping[str, Any] | None = None) -> Pointer | None:
    """The S3 pointer a received body is, or None for an ordinary body.

    `attributes` are the message's attributes as ReceiveMessage (PascalCase) or a Lambda event
    (camelCase) gives them, or None. Raises MalformedMessage for a body that claims to be a pointer,
    by its class name or the size attribute, but is not a well-formed one.
    """
    size, marked = _marked_size(attributes or {})
    if not marked and not body.lstrip().startswith("["):
        return None  # every dramatiq body is a JSON object: no need to parse a large one twice
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or absurdly nested: not a pointer either way
        value = None
    is_pointer = isinstance(value, list) and bool(value) and str(value[0]) in _POINTER_CLASSES
    if not is_pointer and not marked:
        return None
    location = value[1] if is_pointer and len(value) == 2 and isinstance(value[1], dict) else {}
    bucket, key = location.get("s3BucketName"), location.get("s3Key")
    if not (isinstance(bucket, str) and bucket and isinstance(key, str) and key):
        raise MalformedMessage(
            "The body is marked as an S3 pointer but is not one: expected "
            f'["{POINTER_CLASS}", {{"s3BucketName": ..., "s3Key": ...}}], found {body[:200]!r}.'
        )
    return Pointer(bucket, key, size)


def _marked_size(attributes: Mapping[str, Any]) -> tuple[int | None, bool]:
    """The size attribute's value (None when absent or not a number), and whether it is present."""
    for name in _SIZE_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, Mapping):
            raw = value.get("StringValue", value.get("stringValue"))
            try:
                return int(str(raw)), True
            except ValueError:
                return None, True
    return None, False


class Payloads:
    """Stores, reads and deletes the payloads of large messages in S3; thread-safe, one per broker.

    Parameters:
      bucket: Where messages above the threshold are stored; None sends every message through SQS
        alone (and refuses one that is too large). Pointers received are read either way.
      threshold: Messages whose body and attributes exceed this many bytes go through S3; None
        means each queue's MaximumMessageSize. Never above the queue's MaximumMessageSize.
      delete_payloads: Delete an object once its message is acked; False leaves every object to
        the bucket's lifecycle rule (as the Extended Client for Python does by default).
      s3_client: A boto3 S3 client to use; else one is made from endpoint_url, region_name and
        client_options, on first use.
    """

    def __init__(
        self,
        *,
        bucket: str | None = None,
        threshold: int | None = None,
        delete_payloads: bool = True,
        s3_client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        **client_options: Any,
    ) -> None:
        if bucket is not None and not _BUCKET_NAME.fullmatch(bucket):
            raise ValueError(
                f"payload_bucket {bucket!r} is not an S3 bucket name (3-63 lowercase letters, digits, "
                "dots and hyphens)."
            )
        if threshold is not None and bucket is None:
            raise ValueError("payload_threshold needs a payload_bucket to send the larger messages to.")
        if threshold is not None and not 0 < threshold <= MAX_MESSAGE_BYTES:
            raise ValueError(f"payload_threshold must be between 1 and {MAX_MESSAGE_BYTES:,} bytes.")
        self.bucket = bucket
        self.threshold = threshold
        self.delete_payloads = delete_payloads
        self._client = s3_client
        self._client_options = {"endpoint_url": endpoint_url, "region_name": region_name, **client_options}
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        if s3_client is not None:
            s3_client.meta.events.register("before-send.s3", self._count)
        self._cond = threading.Condition()
        self._doomed: deque[Pointer] = deque()
        self._deleter: threading.Thread | None = None
        self._closing = False

    # --- what operators read --------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        """S3 requests made so far, by action name prefixed "s3:", botocore's retries included."""
        with self._lock:
            return dict(self._counts)

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use."""
        with self._lock:
            if self._client is None:
                self._client = _make_client(**self._client_options)
                self._client.meta.events.register("before-send.s3", self._count)
            return self._client

    def limit(self, queue: Queue) -> int | None:
        """Bytes above which a message for `queue` goes through S3; None when no bucket is set."""
        if self.bucket is None:
            return None
        return min(self.threshold or queue.max_size, queue.max_size)

    # --- sending --------------------------------------------------------------------------------
    def store(self, payload: bytes) -> Pointer:
        """Put a payload in the bucket under a new key; raises ConnectionClosed or PayloadError."""
        if self.bucket is None:
            raise PayloadError("PutObject", "NoBucket", "this broker has no payload_bucket.")
        key = str(uuid.uuid4())
        self._call("put_object", "PutObject", Bucket=self.bucket, Key=key, Body=payload)
        return Pointer(self.bucket, key, len(payload))

    # --- receiving ------------------------------------------------------------------------------
    def fetch(self, pointer: Pointer) -> str:
        """The payload a pointer names, as text.

        Raises PayloadMissing when the object (or its bucket) does not exist, MalformedMessage when
        it is not UTF-8, and ConnectionClosed or PayloadError when S3 could not answer.
        """
        response = self._call("get_object", "GetObject", Bucket=pointer.bucket, Key=pointer.key)
        with contextlib.closing(response["Body"]) as stream:
            try:
                data: bytes = stream.read()
            except _CONNECTION_ERRORS as e:
                raise ConnectionClosed(f"S3 stopped answering while sending {pointer}: {e}") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedMessage(f"The S3 payload {pointer} is not UTF-8 text: {e}.") from None

    def take(self, body: str, attributes: Mapping[str, Any] | None = None) -> tuple[str, Pointer | None]:
        """A received body and its pointer: the payload and where it was when the body is a pointer
        (its size then known), else the body itself and None. Raises what parse_pointer and fetch do."""
        pointer = parse_pointer(body, attributes)
        if pointer is None:
            return body, None
        payload = self.fetch(pointer)
        return payload, replace(pointer, size=len(payload.encode("utf-8")))

    def resolve(self, body: str, attributes: Mapping[str, Any] | None = None) -> str:
        """The message a received body carries: the S3 payload when it is a pointer, else itself.

        For any place that receives messages itself (a Lambda handler): `attributes` in either the
        ReceiveMessage or the Lambda event shape. Raises PayloadMissing (dead-letter the message),
        ConnectionClosed or PayloadError (leave it for a later try), or MalformedMessage.
        """
        return self.take(body, attributes)[0]

    # --- deleting -------------------------------------------------------------------------------
    def delete_after_success(self, body: str, attributes: Mapping[str, Any] | None = None) -> bool:
        """Delete the object a received pointer names, now, once its message has succeeded.

        For a place whose messages are deleted by someone else (Lambda's event source deletes the
        records a handler did not report as failed): call it only for those. Never raises: returns
        False when nothing was deleted (not a pointer, delete_payloads off, or S3 failed, logged).
        """
        try:
            pointer = parse_pointer(body, attributes)
        except MalformedMessage:
            return False
        if pointer is None or not self.delete_payloads:
            return False
        return self.delete_quietly(pointer)

    def deleter(self, pointer: Pointer | None) -> Callable[[], None] | None:
        """What deletes a pointer's object once its message is gone; None when nothing should."""
        if pointer is None or not self.delete_payloads:
            return None
        return partial(self.delete_later, pointer)

    def delete_quietly(self, pointer: Pointer) -> bool:
        """Delete an object now; a failure is logged (the lifecycle rule removes it), not raised."""
        try:
            self._call("delete_object", "DeleteObject", Bucket=pointer.bucket, Key=pointer.key)
        except (ConnectionClosed, PayloadError) as e:
            logger.warning("Could not delete the S3 payload %s (the lifecycle rule will): %s", pointer, e)
            return False
        return True

    def delete_later(self, pointer: Pointer) -> None:
        """Delete an object in the background, in the order asked."""
        with self._cond:
            self._doomed.append(pointer)
            if self._deleter is None or not self._deleter.is_alive():
                self._deleter = threading.Thread(
                    target=self._delete_in_background, name="offload-s3-deletes", daemon=True
                )
                self._deleter.start()
            self._cond.notify_all()

    def flush(self, timeout: float = CLOSE_TIMEOUT_S) -> bool:
        """Wait (at most `timeout` seconds) until the background deletes asked for so far are done."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._doomed, timeout)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Finish the background deletes still queued (waiting at most `timeout` seconds)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if not self.flush(timeout):
            with self._cond:
                left = len(self._doomed)
            logger.warning("%d S3 payloads were not deleted on close (the lifecycle rule will).", left)

    def _delete_in_background(self) -> None:
        while True:
            with self._cond:
                while not self._doomed and not self._closing:
                    self._cond.wait()
                if not self._doomed:
                    return
                pointer = self._doomed[0]
            self.delete_quietly(pointer)
            with self._cond:
                self._doomed.popleft()
                self._cond.notify_all()

    # --- the S3 client --------------------------------------------------------------------------
    def _count(self, event_name: str, **_: Any) -> None:
        action = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self._counts[f"s3:{action}"] += 1

    def _call(self, method: str, action: str, **params: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self.client, method)(**params)
        except _CONNECTION_ERRORS as e:
            raise ConnectionClosed(f"S3 could not be reached ({action}): {e}") from None
        except botocore.exceptions.ClientError as e:
            error = e.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            detail = f"{error.get('Message') or code} (s3://{params['Bucket']}/{params['Key']})"
            if action == "GetObject" and code in _MISSING_CODES:
                raise PayloadMissing(action, code, detail) from None
            raise PayloadError(action, code, detail) from None
        return response


def _make_client(*, endpoint_url: str | None, region_name: str | None, **client_options: Any) -> Any:
    options: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        "connect_timeout": CONNECT_TIMEOUT_S,
        "read_timeout": READ_TIMEOUT_S,
    }
    if endpoint_url:
        # A local or compatible server rarely resolves bucket subdomains: address buckets by path.
        options["s3"] = {"addressing_style": "path"}
    config = botocore.config.Config(**options)
    if "config" in client_options:
        config = config.merge(client_options.pop("config"))
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region_name, config=config, **client_options
    )
