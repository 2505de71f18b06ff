"""Reading settings from the environment: the only place offload looks at os.environ for them."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn
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
    if value not in _TRUE | _FALSE:
        refuse(f"{name} must be one of true/false/1/0/yes/no/on/off, not {raw!r}.")
    return value in _TRUE


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
        refuse(f"{name} must be an integer, not {raw!r}.")


def env_optional(name: str, default: str | None = None) -> str | None:
    """An optional string: unset uses the default, set-but-empty means "none"."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip() or None


def is_loopback(url: str | None) -> bool:
    """True for a URL on this machine (a local SQS or S3 server)."""
    return bool(url) and urlsplit(url).hostname in {"127.0.0.1", "localhost", "::1"}


def load_env_file(path: str | None) -> None:
    """Read KEY=VALUE lines from a local file into os.environ; variables already set win.

    `make run` writes `.env` (DEBUG and a SECRET_KEY made once), so every local process, and every
    `manage.py` command typed by hand, shares one key. Blank lines and `#` comments are skipped, and
    one pair of surrounding quotes is removed from a value. A missing file is not an error.
    """
    if not path:
        return
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.isidentifier():
            refuse(f"{path}, line {number}: expected NAME=value, found {line!r}.")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        os.environ.setdefault(name, value)


#: The exit status of a process whose settings are wrong. gunicorn stops ("App failed to load") when a
#: worker exits with it, instead of starting a new worker that fails the same way, forever.
EXIT_BAD_SETTINGS = 4


def refuse(message: str) -> NoReturn:
    """Stop the process with one line on stderr naming the setting that is missing or wrong.

    A traceback through the settings module would only hide which setting it is.
    """
    print(f"offload: {message}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_BAD_SETTINGS)
