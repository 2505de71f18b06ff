"""web.settings as a deployment reads them, with the collected static files in a folder of the test's own."""

import os
from pathlib import Path

from web.settings import *  # noqa: F403

STATIC_ROOT = Path(os.environ["OFFLOAD_TEST_STATIC_ROOT"])
