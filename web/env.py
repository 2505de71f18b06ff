"""Reading settings from the environment: the only place offload looks at os.environ for them."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name} must be one of true/false/1/0/yes/no/on/off, not {raw!r}.")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}.") from None


def env_optional(name: str, default: str | None = None) -> str | None:
    """An optional string: unset uses the default, set-but-empty means "none"."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip() or None


def is_loopback(url: str | None) -> bool:
    """True for a URL on this machine (a local SQS or S3 server)."""
    return bool(url) and urlsplit(url).hostname in {"127.0.0.1", "localhost", "::1"}
