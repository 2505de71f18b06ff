"""Settings for the test suite: the project's own, plus what lets them load on any machine.

Production refuses to start without SECRET_KEY; the suite brings a key of its own, turns DEBUG on as
local work does, and never reads a developer's `.env`, so a run depends on nothing set up by hand.
Values already in the environment (DATABASE_URL for Postgres, SQS_ENDPOINT_URL) still apply.
"""

import os

os.environ["ENV_FILE"] = ""
os.environ.setdefault("SECRET_KEY", "offload-test-suite-only-" + "k" * 40)
os.environ.setdefault("DEBUG", "true")

from web.settings import *  # noqa: F403
