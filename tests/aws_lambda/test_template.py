"""deploy/template.yaml agrees with the code it deploys: queue names, handlers, the schedule, limits."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from cfnlint.decode import decode

from brokers.names import sqs_queue_name
from web.aws_lambda import scheduled_time

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "template.yaml"
NAMESPACE = "shop"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    parsed, errors = decode(str(TEMPLATE))
    assert not errors, errors
    return parsed


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def substituted(value: Any, **names: str) -> str:
    """A !Sub string with the given parameters filled in."""
    text = value["Fn::Sub"]
    for name, replacement in names.items():
        text = text.replace("${" + name + "}", replacement)
    return text


def test_every_queue_the_actors_use_exists_under_the_name_the_broker_derives_with_its_dead_letter_queue(
    template,
):
    queues = {
        substituted(q["Properties"]["QueueName"], Namespace=NAMESPACE): (name, q)
        for name, q in resources(template, "AWS::SQS::Queue").items()
    }
    declared = dramatiq.get_broker().get_declared_queues()
    assert declared, "the project's actors declare their queues"

    for queue_name in declared:
        _, queue = queues[sqs_queue_name(queue_name, namespace=NAMESPACE)]
        dead_letter_name, _ = queues[sqs_queue_name(queue_name, namespace=NAMESPACE, dead_letter=True)]
        redrive = queue["Properties"]["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dead_letter_name, "Arn"]}
        assert redrive["maxReceiveCount"] >= 5


def test_the_worker_reports_partial_batch_failures_and_the_queue_outlasts_six_worker_timeouts(template):
    worker = template["Resources"]["WorkerFunction"]["Properties"]
    source = next(e["Properties"] for e in worker["Events"].values() if e["Type"] == "SQS")
    queue_name = source["Queue"]["Fn::GetAtt"][0]
    queue = template["Resources"][queue_name]["Properties"]

    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "WorkerMaxConcurrency"}
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"]


@pytest.mark.parametrize("function", ["WebFunction", "WorkerFunction", "SchedulerFunction"])
def test_each_function_names_a_handler_that_exists(template, function):
    module, _, name = template["Resources"][function]["Properties"]["Handler"].rpartition(".")

    assert callable(getattr(importlib.import_module(module), name, None))


def test_the_schedule_passes_the_scheduled_time_where_the_scheduler_handler_reads_it(template):
    events = template["Resources"]["SchedulerFunction"]["Properties"]["Events"]
    schedule = next(e["Properties"] for e in events.values() if e["Type"] == "ScheduleV2")
    # EventBridge Scheduler replaces each context attribute in the input with its value.
    event = json.loads(
        schedule["Input"]
        .replace("<aws.scheduler.scheduled-time>", "2026-03-02T12:00:00Z")
        .replace(
            "<aws.scheduler.schedule-arn>", "arn:aws:scheduler:eu-west-1:210987654321:schedule/default/x"
        )
        .replace("<aws.scheduler.execution-id>", "d32c5kddcf5bb8c3")
        .replace("<aws.scheduler.attempt-number>", "1")
    )

    assert scheduled_time(event).isoformat() == "2026-03-02T12:00:00+00:00"
    assert schedule["ScheduleExpression"] == "cron(* * * * ? *)"


def test_no_function_may_create_purge_or_delete_queues_and_none_is_granted_everything(template):
    for name, function in resources(template, "AWS::Serverless::Function").items():
        for policy in function["Properties"]["Policies"]:
            for statement in policy["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                assert not any("*" in action for action in actions), name
                assert statement["Resource"] != "*", name
                assert not {"sqs:CreateQueue", "sqs:PurgeQueue", "sqs:DeleteQueue"} & set(actions), name


def test_a_large_messages_payload_outlives_its_longest_delay_its_queue_and_its_dead_letter(template):
    from dramatiq.middleware.retries import DEFAULT_MAX_BACKOFF

    day_s = 24 * 60 * 60
    resources_ = template["Resources"]
    [rule] = resources_["PayloadBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    expiry_days = template["Parameters"][rule["ExpirationInDays"]["Ref"]]["Default"]
    retention_days = sum(
        resources_[name]["Properties"]["MessageRetentionPeriod"] / day_s
        for name in ("DefaultQueue", "DefaultDeadLetterQueue")
    )
    # dramatiq stops a retry's backoff at its DEFAULT_MAX_BACKOFF (7 days), whatever an actor asks.
    longest_backoff_days = DEFAULT_MAX_BACKOFF / (day_s * 1000)

    assert expiry_days >= longest_backoff_days + retention_days
