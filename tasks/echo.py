"""A tiny actor for checking that the web process, SQS and the worker are wired together.

>>> from tasks.echo import echo
>>> echo.send("hello")      # from `python manage.py shell`; the worker logs "Echo: 'hello'."
"""

import logging

import dramatiq

logger = logging.getLogger(__name__)


@dramatiq.actor(max_retries=3)
def echo(text: str) -> None:
    logger.info("Echo: %r.", text)
