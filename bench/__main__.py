"""`make bench`: make the benchmark's virtualenvs if needed, then run the harness in the clients' one."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.envs import PEERS_VENV, ensure_all, python

if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    if Path(sys.prefix).resolve() != PEERS_VENV.resolve():
        ensure_all()
    os.chdir(root)
    env = {**os.environ, "PYTHONPATH": str(root)}
    interpreter = str(python(PEERS_VENV))
    # Replace this process: Ctrl-C and the exit status are the harness's own.
    os.execve(interpreter, [interpreter, "-m", "bench.run", *sys.argv[1:]], env)  # noqa: S606
