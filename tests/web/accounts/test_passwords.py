"""Passwords are stored with Argon2id; hashes from before still log in and are upgraded."""

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import argon2
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, make_password

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


def test_a_process_hashes_no_more_passwords_at_once_than_password_hashes_at_once(
    production_password_hashers, settings, monkeypatch
):
    settings.PASSWORD_HASHES_AT_ONCE = 2
    hashing, most = 0, 0
    counting = threading.Lock()
    # Each hash lingers until a third one joins it, so without the limit they would all overlap.
    crowded = threading.Event()

    def counted(real):
        def hash_counted(*args, **kwargs):
            nonlocal hashing, most
            with counting:
                hashing += 1
                most = max(most, hashing)
                if hashing > settings.PASSWORD_HASHES_AT_ONCE:
                    crowded.set()
            crowded.wait(timeout=0.3)
            try:
                return real(*args, **kwargs)
            finally:
                with counting:
                    hashing -= 1

        return hash_counted

    monkeypatch.setattr(argon2.low_level, "hash_secret", counted(argon2.low_level.hash_secret))
    monkeypatch.setattr(argon2.PasswordHasher, "verify", counted(argon2.PasswordHasher.verify))
    stored = make_password(PASSWORD)
    most = 0
    results: list[bool] = []
    log_ins = [
        threading.Thread(target=lambda: results.append(check_password(PASSWORD, stored))) for _ in range(3)
    ]
    sign_ups = [
        threading.Thread(target=lambda: results.append(bool(make_password(PASSWORD)))) for _ in range(3)
    ]
    for thread in log_ins + sign_ups:
        thread.start()
    for thread in log_ins + sign_ups:
        thread.join()

    assert results == [True] * 6
    assert most == 2


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
