"""The password hasher: Argon2id with parameters chosen for a log-in that costs under 100 ms.

OWASP's minimum for Argon2id is 19 MiB of memory, 2 passes and 1 lane. These parameters go above
it on both memory and passes and stay well under the 100 ms a log-in may cost on a 2-core machine
(measured: about 46 ms per hash, 56 ms with two at once; the figures and the attacker's cost are in
the README, "Passwords"). One lane, because the web processes already hash several passwords at
once on few cores; more lanes would only make each hash compete with the others.

A process runs at most PASSWORD_HASHES_AT_ONCE hashes at a time (1 by default); other log-ins and
sign-ups wait their turn. Hashes run side by side are no faster than one after another (each holds
24 MiB, and together they thrash the cache), and while every request thread hashes, the pages served
beside a burst of log-ins get no core: measured with the site benchmark (README, "Passwords"). The
limit covers the PBKDF2 hashes that accounts made before Argon2id still have (about 0.5 s each): right
after the switch, every log-in checks one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from functools import cache

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher, PBKDF2PasswordHasher

#: Memory per hash in KiB (24 MiB): what each concurrent log-in holds while it hashes.
MEMORY_COST_KIB = 24 * 1024
#: Passes over that memory.
TIME_COST = 3
#: Lanes (threads) per hash.
PARALLELISM = 1


class Argon2idPasswordHasher(Argon2PasswordHasher):
    """Django's Argon2 hasher (Argon2id) with offload's parameters.

    The algorithm name stays "argon2", so hashes made with other parameters still verify and are
    rehashed with these at the next successful log-in (Django compares the stored parameters).
    """

    memory_cost = MEMORY_COST_KIB
    time_cost = TIME_COST
    parallelism = PARALLELISM

    def encode(self, password: str, salt: str) -> str:
        with _hashing_slot():
            return super().encode(password, salt)

    def verify(self, password: str, encoded: str) -> bool:
        with _hashing_slot():
            return super().verify(password, encoded)


class BoundedPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2 hasher, for the hashes stored before Argon2id, within the same limit.

    A successful log-in replaces such a hash with an Argon2id one. Its verify (and the extra work
    Django adds for timing) go through encode, so encode alone takes the slot.
    """

    def encode(self, password: str, salt: str, iterations: int | None = None) -> str:
        with _hashing_slot():
            return super().encode(password, salt, iterations)


@contextlib.contextmanager
def _hashing_slot() -> Iterator[None]:
    """Wait for one of the PASSWORD_HASHES_AT_ONCE slots of this process (0: no limit)."""
    limit = settings.PASSWORD_HASHES_AT_ONCE
    if limit <= 0:
        yield
        return
    with _slots(limit):
        yield


@cache
def _slots(limit: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(limit)
