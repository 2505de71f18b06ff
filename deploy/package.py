"""Build the AWS Lambda deployment package that deploy/template.yaml names: build/lambda/offload-lambda.zip.

    python deploy/package.py        (or: make lambda-package)

1. offload's dependencies and its `lambda` extra, as wheels for Lambda's python3.12 on x86_64
   (manylinux, glibc up to Amazon Linux 2023's 2.34), whatever machine builds it: pip may only take
   wheels, so nothing compiled for the building machine ends up in the zip.
2. The project's packages (web, tasks, brokers, scheduler) and manage.py.
3. collectstatic into staticfiles/, with DEBUG off: WhiteNoise's hashed and compressed files.
4. Bytecode compiled ahead, checked by nothing but its presence: Lambda's /var/task is read-only, so
   without it every cold start compiles each module it imports, and zip timestamps would make
   timestamp-checked bytecode look stale.
5. A zip whose bytes depend only on its contents (sorted, fixed times), and the unzipped size checked
   against Lambda's 250 MB limit.
"""

from __future__ import annotations

import argparse
import compileall
import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The project's own code that runs on Lambda.
PACKAGES = ("web", "tasks", "brokers", "scheduler")
#: Lambda's limit on a function's code unzipped, layers included (gettingstarted-limits): 250 MB,
#: which AWS counts as 262,144,000 bytes. Sizes below are reported in the same MB (2**20 bytes).
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
_MB = 1024 * 1024
#: Above this a zip cannot be uploaded to Lambda directly; `sam deploy` goes through S3, which can.
MAX_DIRECT_UPLOAD_BYTES = 50 * 1024 * 1024
#: The runtime deploy/template.yaml names; bytecode is only valid for the Python that made it.
PYTHON_VERSION = "3.12"
#: Amazon Linux 2023 (python3.12's runtime) has glibc 2.34; manylinux2014 is glibc 2.17.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(34, 16, -1)] + ["manylinux2014_x86_64"]
#: Zip entries get this time, so two builds of the same tree give the same bytes.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class PackageError(Exception):
    """Raised when the package cannot be built or breaks one of Lambda's limits."""


def requirements() -> list[str]:
    """offload's install_requires and its `lambda` extra, read from setup.cfg."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    lines = config["options"]["install_requires"].splitlines()
    lines += config["options.extras_require"]["lambda"].splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def install_dependencies(target: Path) -> None:
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--target", str(target), "--implementation", "cp", "--python-version", PYTHON_VERSION,
        *platforms, "--only-binary=:all:", *requirements(),
    ]  # fmt: skip
    if subprocess.run(command, check=False).returncode != 0:
        raise PackageError("pip could not install the dependencies as Linux x86_64 wheels (see above).")


def drop_unused(target: Path) -> None:
    # Translation sources: Django reads only the compiled *.mo catalogues (11 MB of 103).
    for path in target.rglob("*.po"):
        path.unlink()
    # Console scripts: nothing runs them on Lambda, and their first line names this machine's Python.
    shutil.rmtree(target / "bin", ignore_errors=True)


def copy_project(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, target / package, ignore=ignore)
    shutil.copy2(ROOT / "manage.py", target / "manage.py")


def collect_static(target: Path) -> None:
    # Run from the package's own copy of the project, so settings put STATIC_ROOT inside it.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "web.settings",
        "DEBUG": "false",
        # collectstatic signs nothing; settings only need some key once DEBUG is off.
        "SECRET_KEY": "collectstatic-only-" + "x" * 40,
        "PYTHONPATH": str(target),
        # Bytecode is compiled afterwards, all of it the same way.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"]
    if subprocess.run(command, cwd=target, env=env, check=False).returncode != 0:
        raise PackageError("collectstatic failed (see above).")
    if not (target / "staticfiles" / "staticfiles.json").is_file():
        raise PackageError("collectstatic wrote no manifest into the package's staticfiles/.")


def compile_bytecode(target: Path) -> None:
    if sys.version_info[:2] != tuple(int(part) for part in PYTHON_VERSION.split(".")):
        raise PackageError(
            f"Bytecode for Lambda's python{PYTHON_VERSION} must be compiled by Python {PYTHON_VERSION}; "
            f"this is {sys.version.split()[0]}."
        )
    ok = compileall.compile_dir(
        target,
        quiet=2,
        force=True,
        workers=0,
        invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise PackageError("Some modules did not compile (see above).")


def unzipped_size(target: Path) -> int:
    return sum(path.stat().st_size for path in target.rglob("*") if path.is_file())


def write_zip(target: Path, archive: Path) -> None:
    archive.unlink(missing_ok=True)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zipped:
        for path in sorted(p for p in target.rglob("*") if p.is_file()):
            entry = zipfile.ZipInfo(path.relative_to(target).as_posix(), date_time=ZIP_TIME)
            # Readable by Lambda's runtime user, whatever the building machine's umask was.
            entry.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            zipped.writestr(entry, path.read_bytes(), compresslevel=9)


def build(output: Path) -> tuple[Path, int, int]:
    """Build the package in `output`; returns the zip's path, its size, and the unzipped size."""
    target = output / "package"
    archive = output / "offload-lambda.zip"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    install_dependencies(target)
    drop_unused(target)
    copy_project(target)
    collect_static(target)
    compile_bytecode(target)
    unzipped = unzipped_size(target)
    if unzipped > MAX_UNZIPPED_BYTES:
        raise PackageError(
            f"The package is {unzipped / _MB:.1f} MB unzipped; "
            f"Lambda allows {MAX_UNZIPPED_BYTES / _MB:.0f} MB."
        )
    write_zip(target, archive)
    return archive, archive.stat().st_size, unzipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "lambda", help="build folder")
    options = parser.parse_args()
    try:
        archive, zipped, unzipped = build(options.output)
    except PackageError as error:
        sys.stderr.write(f"lambda-package: {error}\n")
        return 1
    share = unzipped / MAX_UNZIPPED_BYTES
    sys.stdout.write(
        f"{archive.relative_to(ROOT) if archive.is_relative_to(ROOT) else archive}: "
        f"{zipped / _MB:.1f} MB zipped, {unzipped / _MB:.1f} MB unzipped "
        f"({share:.0%} of Lambda's {MAX_UNZIPPED_BYTES / _MB:.0f} MB).\n"
    )
    if zipped > MAX_DIRECT_UPLOAD_BYTES:
        sys.stdout.write("Too large to upload to Lambda directly; `sam deploy` uploads it through S3.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
