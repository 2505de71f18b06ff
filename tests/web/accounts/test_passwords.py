"""Passwords are stored with Argon2id; hashes from before still log in and are upgraded."""

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import argon2
import django.contrib.auth.hashers
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher, check_password, make_password

PASSWORD = "a long and unusual passphrase 42"
#: OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
OWASP_MIN_MEMORY_KIB, OWASP_MIN_PASSES = 19 * 1024, 2


def _argon2_parameters(encoded: str) -> dict[str, int]:
    match = re.fullmatch(r"argon2\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[^$]+\$[^$]+", encoded)
    assert match, f"not an Argon2id hash: {encoded[:40]}"
    memory, passes, lanes = map(int, match.groups())
    return {"memory_kib": memory, "passes": passes, "lanes": lanes}


@pytest.mark.django_db
def test_a_new_account_stores_its_password_with_argon2id_at_or_above_owasps_minimum(
    client, production_password_hashers
):
    client.post("/accounts/signup/", {"email": "argon@example.com", "password": PASSWORD})

    stored = get_user_model().objects.get(email="argon@example.com").password
    parameters = _argon2_parameters(stored)
    assert parameters["memory_kib"] >= OWASP_MIN_MEMORY_KIB
    assert parameters["passes"] >= OWASP_MIN_PASSES
    assert parameters["lanes"] == 1


@pytest.mark.django_db
def test_a_password_stored_with_pbkdf2_still_logs_in_and_is_rehashed_with_argon2id(
    client, production_password_hashers
):
    user = get_user_model().objects.create_user("old@example.com", "old@example.com")
    user.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    user.save()

    response = client.post("/accounts/login/", {"username": "old@example.com", "password": PASSWORD})

    assert response.status_code == 302, response.content.decode()
    user.refresh_from_db()
    assert _argon2_parameters(user.password)["lanes"] == 1
    assert user.check_password(PASSWORD)


@pytest.mark.django_db
def test_an_argon2_hash_made_with_weaker_parameters_is_rehashed_at_the_next_log_in(
    client, production_password_hashers
):
    user = get_user_model().objects.create_user("weak@example.com", "weak@example.com")
    # Django's stock Argon2 hasher with a smaller memory cost, as an earlier configuration might have had.
    from django.contrib.auth.hashers import Argon2PasswordHasher

    weak = Argon2PasswordHasher()
    weak.memory_cost, weak.parallelism = 8 * 1024, 1
    user.password = weak.encode(PASSWORD, weak.salt())
    user.save()

    client.post("/accounts/login/", {"username": "weak@example.com", "password": PASSWORD})

    user.refresh_from_db()
    assert _argon2_parameters(user.password)["memory_kib"] >= OWASP_MIN_MEMORY_KIB


class Overlap:
    """Wraps hashing functions and records the most calls running at once. Each call lingers until
    one more than the limit has joined it (or 0.3 s), so without the limit they would all overlap."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.most = 0
        self._running = 0
        self._counting = threading.Lock()
        self._crowded = threading.Event()

    def wrap(self, real):
        def counted(*args, **kwargs):
            with self._counting:
                self._running += 1
                self.most = max(self.most, self._running)
                if self._running > self.limit:
                    self._crowded.set()
            self._crowded.wait(timeout=0.3)
            try:
                return real(*args, **kwargs)
            finally:
                with self._counting:
                    self._running -= 1

        return counted


def _all_at_once(*calls) -> list:
    results: list = []
    threads = [threading.Thread(target=lambda call=call: results.append(call())) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_a_process_hashes_no_more_passwords_at_once_than_password_hashes_at_once(
    production_password_hashers, settings, monkeypatch
):
    settings.PASSWORD_HASHES_AT_ONCE = 2
    stored = make_password(PASSWORD)
    overlap = Overlap(limit=2)
    monkeypatch.setattr(argon2.low_level, "hash_secret", overlap.wrap(argon2.low_level.hash_secret))
    monkeypatch.setattr(argon2.PasswordHasher, "verify", overlap.wrap(argon2.PasswordHasher.verify))

    log_ins = [lambda: check_password(PASSWORD, stored)] * 3
    sign_ups = [lambda: bool(make_password(PASSWORD))] * 3
    results = _all_at_once(*log_ins, *sign_ups)

    assert results == [True] * 6
    assert overlap.most == 2


def test_log_ins_to_accounts_still_on_pbkdf2_share_the_limit_with_argon2id_and_are_upgraded(
    production_password_hashers, settings, monkeypatch
):
    settings.PASSWORD_HASHES_AT_ONCE = 1
    # Fewer iterations than Django's default, to keep the test quick; the verify path is the same.
    stored = PBKDF2PasswordHasher().encode(PASSWORD, "pbkdf2saltfromlongago", 1_000)
    upgraded: list[str] = []
    # One count over both algorithms: a PBKDF2 check and an Argon2id hash never run side by side.
    overlap = Overlap(limit=1)
    monkeypatch.setattr(
        django.contrib.auth.hashers, "pbkdf2", overlap.wrap(django.contrib.auth.hashers.pbkdf2)
    )
    monkeypatch.setattr(argon2.low_level, "hash_secret", overlap.wrap(argon2.low_level.hash_secret))

    def log_in() -> bool:
        # What User.check_password does: a right password on an old hash is stored again as Argon2id.
        return check_password(PASSWORD, stored, setter=lambda raw: upgraded.append(make_password(raw)))

    results = _all_at_once(log_in, log_in, log_in, lambda: bool(make_password(PASSWORD)))

    assert results == [True] * 4
    assert overlap.most == 1
    assert [_argon2_parameters(encoded)["lanes"] for encoded in upgraded] == [1, 1, 1]


def test_a_negative_number_of_hashes_at_once_stops_the_process_with_one_line_naming_it():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parents[3],
        env={
            "PATH": os.environ["PATH"],
            "ENV_FILE": "",
            "DJANGO_SETTINGS_MODULE": "web.settings",
            "SECRET_KEY": "k" * 50,
            "PASSWORD_HASHES_AT_ONCE": "-1",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 4
    assert result.stderr.strip() == "offload: PASSWORD_HASHES_AT_ONCE must be 0 (no limit) or more, not -1."
