import logging

import pytest

from tasks.echo import echo


@pytest.mark.django_db(transaction=True)
def test_a_message_sent_by_the_web_process_is_run_by_a_worker(broker, worker, caplog):
    caplog.set_level(logging.INFO, logger="tasks.echo")

    echo.send("hello from the web")
    broker.join(echo.queue_name, timeout=10_000)

    assert "Echo: 'hello from the web'." in caplog.messages
