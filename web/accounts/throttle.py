"""Rate limits on log-ins, sign-ups and resent links: which, how many, and counted for whom.

The limits are settings (README, "Rate limits", says why each is what it is). They are fixed windows
counted in the database (web.accounts.counters), per client IP address and per email address:

- log-in failures: checked before a password is looked at, counted after each failure, so a person
  who logs in correctly is never slowed down, and a guesser is refused without learning anything;
- confirmation mails (a sign-up, or a new link asked for): counted when asked for, since each one
  mails an address that may belong to someone else.

Email addresses and IP addresses are stored as keyed digests, never in clear.
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.http import HttpRequest
from django.utils.crypto import salted_hmac
from limits import RateLimitItem, parse
from limits.strategies import FixedWindowRateLimiter

from web.accounts.counters import DatabaseStorage

#: IPv6 clients are counted per /64: one host commonly holds a whole /64 and can change address at will.
IPV6_PREFIX = 64


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused, in words for the person who made it, and when to try again."""

    message: str
    retry_after_s: int


def login_refusal(request: HttpRequest, email: str) -> Refusal | None:
    """A refusal when this address or this client has failed to log in too often lately."""
    for limit, who, message in (
        (_limit("RATE_LIMIT_LOGIN_FAILURES_PER_ADDRESS"), _address(email), "for this address"),
        (_limit("RATE_LIMIT_LOGIN_FAILURES_PER_IP"), _client(request), "from your network"),
    ):
        if not _limiter().test(limit, "login", who):
            return _refusal(limit, who, "login", f"Too many failed log-ins {message}.")
    return None


def login_failed(request: HttpRequest, email: str) -> None:
    """Count one failed log-in (a wrong password, or an unknown address) against both limits."""
    _limiter().hit(_limit("RATE_LIMIT_LOGIN_FAILURES_PER_ADDRESS"), "login", _address(email))
    _limiter().hit(_limit("RATE_LIMIT_LOGIN_FAILURES_PER_IP"), "login", _client(request))


def mail_refusal(request: HttpRequest, email: str) -> Refusal | None:
    """Count a request that mails `email` (a sign-up, a new link); a refusal when over a limit.

    The client is counted first, so a client over its limit does not use up the address's.
    """
    per_ip = _limit("RATE_LIMIT_SIGNUP_MAILS_PER_IP")
    if not _limiter().hit(per_ip, "mail", _client(request)):
        return _refusal(per_ip, _client(request), "mail", "Too many sign-ups from your network.")
    per_address = _limit("RATE_LIMIT_SIGNUP_MAILS_PER_ADDRESS")
    if not _limiter().hit(per_address, "mail", _address(email)):
        return _refusal(
            per_address,
            _address(email),
            "mail",
            "We already sent several links to this address in the last hour: look for them (and in "
            "the spam folder).",
        )
    return None


def client_ip(request: HttpRequest) -> str:
    """The visitor's IP address: REMOTE_ADDR, or, behind TRUSTED_PROXY_HOPS proxies, the address the
    outermost of them saw (X-Forwarded-For, counted from the right, where each proxy appends)."""
    hops = settings.TRUSTED_PROXY_HOPS
    if hops > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "")


def _limit(name: str) -> RateLimitItem:
    return _parsed(getattr(settings, name))


@cache
def _parsed(text: str) -> RateLimitItem:
    return parse(text)


@cache
def _limiter() -> FixedWindowRateLimiter:
    return FixedWindowRateLimiter(DatabaseStorage())


def _refusal(limit: RateLimitItem, who: str, namespace: str, reason: str) -> Refusal:
    reset_at = _limiter().get_window_stats(limit, namespace, who).reset_time
    minutes = max(1, math.ceil((reset_at - time.time()) / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return Refusal(f"{reason} Try again in {minutes} {unit}.", retry_after_s=minutes * 60)


def _address(email: str) -> str:
    return _digest("address", email.strip().lower())


def _client(request: HttpRequest) -> str:
    raw = client_ip(request)
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        return _digest("ip", raw)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is 192.0.2.1
            return _digest("ip", str(ip.ipv4_mapped))
        return _digest("ip", str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False)))
    return _digest("ip", str(ip))


def _digest(kind: str, value: str) -> str:
    return salted_hmac(f"offload.accounts.throttle.{kind}", value, algorithm="sha256").hexdigest()[:32]
