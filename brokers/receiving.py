"""What a received SQS message becomes: a dramatiq message to run, one to send around again, or a
dead letter with the reason.

Every place that takes raw messages off a queue decides here, so a body is judged the same way
wherever it is received. Nothing here makes a request or keeps state: the caller acts on the answer.
A body is refused whole when any field the worker or the broker relies on has the wrong type,
rather than letting it fail later in a place that cannot tell the operator why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dramatiq.errors import DecodeError
from dramatiq.message import Message, get_encoder

from brokers.errors import MalformedMessage
from brokers.limits import MAX_DELAY_MS
from brokers.queues import Queue

#: A delayed message that arrives this close to its ETA (clock skew) is held until due rather than
#: sent around again.
MAX_HOLD_MS = 2_000
#: The reason type of every body refused here, as dramatiq names a body it cannot read.
DECODE_ERROR = "DecodeError"

#: The fields of a dramatiq message and the JSON type each must have.
_FIELDS: dict[str, type] = {
    "queue_name": str,
    "actor_name": str,
    "args": list,
    "kwargs": dict,
    "options": dict,
    "message_id": str,
    "message_timestamp": float,
}
#: Fields dramatiq fills in itself when a body has none.
_OPTIONAL = {"message_id", "message_timestamp"}
_JSON_TYPES = {str: "a string", list: "a list", dict: "an object", int: "an integer", float: "a number"}


@dataclass(frozen=True)
class Run:
    """Give the message to the worker, at once or (when `due_at` is set) at that time in epoch ms."""

    message: Message[Any]
    due_at: int | None = None


@dataclass(frozen=True)
class Resend:
    """Not due yet: send the body unchanged with this delay, and delete what was received."""

    message: Message[Any]
    delay_ms: int


@dataclass(frozen=True)
class Reject:
    """Never runnable: move it to the dead-letter queue with this error."""

    error_type: str
    error: str
    actor: str = ""


def decide(body: str, queue: Queue, *, now_ms: int) -> Run | Resend | Reject:
    """What to do with a body received from `queue` at `now_ms` (epoch milliseconds)."""
    try:
        message = decode(body)
    except MalformedMessage as e:
        return Reject(DECODE_ERROR, str(e), e.actor)
    if message.queue_name != queue.name:
        return Reject(
            DECODE_ERROR,
            f"The message names queue {message.queue_name!r} but was received from {queue.name!r}.",
            message.actor_name,
        )
    if "eta" not in message.options:
        return Run(message)
    eta = message.options["eta"]
    if eta is None:  # dramatiq's own way of saying "no ETA"
        return Run(_without_eta(message))
    remaining = eta - now_ms
    if remaining > MAX_HOLD_MS:
        return Resend(message, math.ceil(min(MAX_DELAY_MS, remaining)))
    return Run(_without_eta(message), due_at=math.ceil(eta) if remaining > 0 else None)


def decode(body: str) -> Message[Any]:
    """A body as a dramatiq message; raises MalformedMessage saying what is wrong with it."""
    try:
        fields = get_encoder().decode(body.encode("utf-8"))
    except Exception as e:  # the encoder's own errors, and RecursionError on absurd nesting
        cause = e.error if isinstance(e, DecodeError) and isinstance(e.error, BaseException) else e
        raise MalformedMessage(
            f"The body is not a dramatiq message: {type(cause).__name__}: {cause}"
        ) from None
    problem = _problem(fields)
    if problem:
        actor = fields.get("actor_name") if isinstance(fields, dict) else None
        raise MalformedMessage(
            f"The body is not a dramatiq message: {problem}.", actor=actor if isinstance(actor, str) else ""
        )
    return Message(**{**fields, "args": tuple(fields["args"])})


def _problem(fields: object) -> str | None:
    if not isinstance(fields, dict):
        return f"it is JSON {_type_name(fields)}, not an object"
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        return f"unknown field {', '.join(map(repr, unknown))}"
    missing = [name for name in _FIELDS if name not in fields and name not in _OPTIONAL]
    if missing:
        return f"missing field {', '.join(map(repr, missing))}"
    for name, kind in _FIELDS.items():
        if name in fields and not _is(fields[name], kind):
            return f"field {name!r} must be {_JSON_TYPES[kind]}, not {_type_name(fields[name])}"
    if not fields.get("message_id", "-"):
        return "field 'message_id' is empty"
    return _option_problem(fields["options"])


def _option_problem(options: dict[str, Any]) -> str | None:
    """The options this broker and dramatiq's retries read must have the type they read them as."""
    eta = options.get("eta")
    if eta is not None and not _is(eta, float):
        return f"option 'eta' must be a time in epoch milliseconds, not {eta!r}"
    retries = options.get("retries", 0)
    if not _is(retries, int) or retries < 0:
        return f"option 'retries' must be a count, not {retries!r}"
    return None


def _is(value: object, kind: type) -> bool:
    """Whether a decoded JSON value has a type; `float` stands for any finite number."""
    if isinstance(value, bool):  # JSON true and false are Python ints too: never a number here
        return False
    if kind is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, kind)


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _without_eta(message: Message[Any]) -> Message[Any]:
    options = {key: value for key, value in message.options.items() if key != "eta"}
    return Message(**{**message.asdict(), "options": options})
