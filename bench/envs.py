"""The benchmark's own virtualenvs, made on first use under bench/ (gitignored).

- `.venv-localstack`: LocalStack core on Python 3.13, the SQS server under test.
- `.venv-peers`: every client (offload's broker from this checkout, dramatiq_sqs, Celery with its SQS
  transport) plus matplotlib for the chart. The peers are installed here only, never in the project.

Each venv holds a marker with the requirements it was made with; a changed list re-installs.
"""

from __future__ import annotations

import concurrent.futures
import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
LOCALSTACK_VENV = BENCH / ".venv-localstack"
PEERS_VENV = BENCH / ".venv-peers"

#: LocalStack core without Docker, and the pins it needs to start (see the SQS servers notes).
LOCALSTACK_REQUIREMENTS = [
    "localstack-core[runtime]==2026.3.0",
    "cbor2<6",
    "pyopenssl<24.3",
    "service_identity",
]
#: The peers, pinned so that two runs compare the same code.
PEER_REQUIREMENTS = ["dramatiq-sqs==0.4.4", "celery[sqs]==5.7.0", "matplotlib==3.11.2"]
#: System packages pycurl (Celery's SQS transport receives through it) builds against.
PYCURL_APT_PACKAGES = ["libcurl4-openssl-dev", "libssl-dev"]
#: LocalStack core 2026.3 runs on this Python minor version.
LOCALSTACK_PYTHON = "3.13"
_MARKER = ".bench-requirements"


def python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_all() -> None:
    _ensure_pycurl_build_deps()
    # offload's broker runs on the same dramatiq and boto3 as the project itself.
    project_pins = [f"{name}=={importlib.metadata.version(name)}" for name in ("dramatiq", "boto3")]
    # The two installs are mostly downloads and unpacking: side by side they take the time of one.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [
            pool.submit(ensure_venv, LOCALSTACK_VENV, _localstack_python(), LOCALSTACK_REQUIREMENTS),
            pool.submit(ensure_venv, PEERS_VENV, sys.executable, project_pins + PEER_REQUIREMENTS),
        ]
        for job in jobs:
            job.result()


def ensure_venv(venv: Path, base_python: str, requirements: list[str]) -> None:
    marker = venv / _MARKER
    wanted = "\n".join(requirements) + "\n"
    if marker.exists() and marker.read_text() == wanted and python(venv).exists():
        return
    print(f"bench: installing {venv.name} ({', '.join(requirements)})", flush=True)
    if not python(venv).exists():
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    pip = [str(python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *requirements], check=True)
    marker.write_text(wanted)


def _localstack_python() -> str:
    """An interpreter of Python 3.13 that really runs: BENCH_LOCALSTACK_PYTHON, pyenv's, or PATH's.

    pyenv is asked first and by version: a `python3.13` on PATH may be pyenv's shim for a version
    that is installed but not selected, which exits with "command not found" when run.
    """
    override = os.environ.get("BENCH_LOCALSTACK_PYTHON")
    if override:
        return override
    name = f"python{LOCALSTACK_PYTHON}"
    candidates = _pyenv_pythons(name)
    found = shutil.which(name)
    if found:
        candidates.append(found)
    for candidate in candidates:
        if _runs(candidate):
            return candidate
    raise SystemExit(
        f"bench: LocalStack needs Python {LOCALSTACK_PYTHON}; install it (pyenv install {LOCALSTACK_PYTHON}) "
        "or set BENCH_LOCALSTACK_PYTHON to its interpreter."
    )


def _pyenv_pythons(name: str) -> list[str]:
    """pyenv's interpreters called `name`, newest first (none when pyenv is missing)."""
    if not shutil.which("pyenv"):
        return []
    listed = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True, check=False)
    versions = [v for v in listed.stdout.split() if v.startswith(LOCALSTACK_PYTHON + ".")]
    found = []
    for version in sorted(versions, key=_version_key, reverse=True):
        result = subprocess.run(
            ["pyenv", "which", name],
            capture_output=True,
            text=True,
            env={**os.environ, "PYENV_VERSION": version},
            check=False,
        )
        if result.returncode == 0 and result.stdout.strip():
            found.append(result.stdout.strip())
    return found


def _version_key(version: str) -> tuple[int, ...]:
    # "3.13.10" sorts after "3.13.9"; a suffix such as "3.13.0t" keeps its place by its digits.
    return tuple(int("".join(c for c in part if c.isdigit()) or 0) for part in version.split("."))


def _runs(interpreter: str) -> bool:
    """True when `interpreter` starts and is the wanted minor version (a shim may be neither)."""
    check = f"import sys; sys.exit(sys.version_info[:2] != {tuple(map(int, LOCALSTACK_PYTHON.split('.')))})"
    try:
        result = subprocess.run([interpreter, "-c", check], capture_output=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _ensure_pycurl_build_deps() -> None:
    marker = PEERS_VENV / _MARKER
    if marker.exists() or shutil.which("curl-config"):
        return
    if not shutil.which("apt-get"):
        print("bench: curl-config not found; pycurl may fail to build (install libcurl's dev package).")
        return
    print(f"bench: installing {' '.join(PYCURL_APT_PACKAGES)} for pycurl", flush=True)
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "apt-get"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run([*apt, "install", "-y", "-q", *PYCURL_APT_PACKAGES], env=env, check=False)
    if result.returncode != 0:
        subprocess.run([*apt, "update", "-q"], env=env, check=True)
        subprocess.run([*apt, "install", "-y", "-q", *PYCURL_APT_PACKAGES], env=env, check=True)
