"""Passwords are stored with Argon2id; hashes from before still log in and are upgraded."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

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
