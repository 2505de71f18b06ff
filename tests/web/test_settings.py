"""How the processes start: production refuses to run without a key; local processes share one."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What a production machine has: no DEBUG, no local env file, AWS credentials from its role.
_BARE = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "ENV_FILE": ""}


def _run(command: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=ROOT,
        env={**_BARE, "DJANGO_SETTINGS_MODULE": "web.settings", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _manage(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def _shell(code: str) -> list[str]:
    return _manage("shell", "-c", code)


def _printed(result: subprocess.CompletedProcess[str]) -> str:
    """The last line a `manage.py shell -c` printed (the shell announces its imports first)."""
    return result.stdout.strip().splitlines()[-1]


PROCESSES = {
    "release": _manage("migrate", "--noinput"),
    "web": [
        str(Path(sys.executable).parent / "gunicorn"),
        "web.wsgi",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "2",
    ],
    "worker": _manage("rundramatiq", "--processes", "1", "--threads", "1"),
    "scheduler": _manage("runscheduler"),
}


@pytest.mark.parametrize("process", PROCESSES.keys())
def test_every_process_started_without_debug_or_secret_key_exits_with_one_line_naming_it(process):
    result = _run(PROCESSES[process], {"DEBUG": "false"})

    assert result.returncode == 4, result.stderr
    # gunicorn logs its own start ("[date] [pid] [INFO] Starting gunicorn") before it loads the settings.
    lines = [line for line in result.stderr.splitlines() if not line.startswith("[")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("offload: SECRET_KEY is not set.")


def test_a_malformed_setting_is_named_in_one_line():
    result = _run(_manage("check"), {"SECRET_KEY": "k" * 50, "DEBUG": "sometimes"})

    assert result.returncode == 4
    assert result.stderr.strip() == (
        "offload: DEBUG must be one of true/false/1/0/yes/no/on/off, not 'sometimes'."
    )


def test_check_deploy_with_a_production_environment_reports_no_issues():
    production = {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "offload.example.com",
    }

    result = _run(_manage("check", "--deploy", "--fail-level", "WARNING"), production)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_turning_the_ssl_redirect_off_is_reported_by_check_deploy():
    production = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "example.com"}

    result = _run(_manage("check", "--deploy"), {**production, "SECURE_SSL_REDIRECT": "false"})

    assert "security.W008" in result.stdout + result.stderr


def test_a_link_signed_by_one_local_process_verifies_in_another(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"# made by make run\nDEBUG=true\nSECRET_KEY='{secrets.token_urlsafe(50)}'\n")
    local = {"ENV_FILE": str(env_file)}

    signed = _run(
        _manage("shell", "-c", "from django.core import signing; print(signing.dumps('hello', salt='t'))"),
        local,
    )
    assert signed.returncode == 0, signed.stderr
    verified = _run(
        _manage(
            "shell",
            "-c",
            f"from django.core import signing; print(signing.loads({_printed(signed)!r}, salt='t'))",
        ),
        local,
    )

    assert verified.returncode == 0, verified.stderr
    assert _printed(verified) == "hello"


def test_the_real_environment_wins_over_the_local_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DEBUG=true\nSECRET_KEY=from-the-file-" + "x" * 40 + "\n")

    result = _run(
        _manage(
            "shell", "-c", "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"
        ),
        {"ENV_FILE": str(env_file), "DEBUG": "false", "SECRET_KEY": "from-the-environment-" + "y" * 40},
    )

    assert result.returncode == 0, result.stderr
    assert _printed(result).split() == ["False", "from-the-environment-" + "y" * 40]


def test_a_broken_line_in_the_local_env_file_is_named(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DEBUG=true\nthis is not a setting\n")

    result = _run(_manage("check"), {"ENV_FILE": str(env_file)})

    assert result.returncode == 4
    assert result.stderr.strip() == (
        f"offload: {env_file}, line 2: expected NAME=value, found 'this is not a setting'."
    )
