"""The password hasher: Argon2id with parameters chosen for a log-in that costs under 100 ms.

OWASP's minimum for Argon2id is 19 MiB of memory, 2 passes and 1 lane. These parameters go above
it on both memory and passes and stay well under the 100 ms a log-in may cost on a 2-core machine
(measured: about 46 ms per hash, 56 ms with two at once; the figures and the attacker's cost are in
the README, "Passwords"). One lane, because the web processes already hash several passwords at
once on few cores; more lanes would only make each hash compete with the others.
"""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher

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
