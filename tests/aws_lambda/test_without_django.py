"""brokers.sqs_events serves a plain dramatiq project: no Django imported, none configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A Lambda handler module of a project without Django: its own broker and actor, and the test
# suite's stand-in for Lambda's event source feeding it what is in the queue.
_PROJECT = """
import json, sys

import dramatiq

from brokers import SQSBroker
from brokers.sqs_events import SQSEventHandler
from tests.aws_lambda.event_source import EventSourceMapping

broker = SQSBroker(namespace=sys.argv[2], endpoint_url=sys.argv[1], region_name="us-east-1")
dramatiq.set_broker(broker)
sums = []


@dramatiq.actor(max_retries=0)
def add(a, b):
    sums.append(a + b)


add.send(2, 3)
add.send(40, 2)
broker.client.send_message(QueueUrl=broker.queue_url("default"), MessageBody="not a dramatiq message")
handler = SQSEventHandler(broker)
invocations = EventSourceMapping(broker.client, broker.queue_url("default"), handler).run_until_idle()
print(json.dumps({
    "sums": sorted(sums),
    "reported": [message_id for i in invocations for message_id in i.reported],
    "counts": broker.queue_counts("default"),
    "django_imported": sorted(m for m in sys.modules if m == "django" or m.startswith("django.")),
}))
"""


def test_a_plain_dramatiq_project_runs_its_records_through_the_event_handler_without_django(
    sqs_endpoint, namespace
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
    env.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", _PROJECT, sqs_endpoint, namespace],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["sums"] == [5, 42]
    assert outcome["reported"] == []  # the bad body is dead-lettered with its reason, not retried
    assert outcome["counts"] == {"visible": 0, "in_flight": 0, "delayed": 0, "dead_letters": 1}
    assert outcome["django_imported"] == []
