"""SQS_PAYLOAD_BUCKET and SQS_PAYLOAD_THRESHOLD reach the broker, and nonsense stops the process."""

from __future__ import annotations

from tests.web.test_settings import _printed, _run, _shell

_LOCAL = {"SECRET_KEY": "k" * 50, "DEBUG": "true"}


def test_the_payload_bucket_and_threshold_are_the_brokers():
    code = "import dramatiq; p = dramatiq.get_broker().payloads; print(p.bucket, p.threshold)"
    result = _run(
        _shell(code), {**_LOCAL, "SQS_PAYLOAD_BUCKET": "shop-payloads", "SQS_PAYLOAD_THRESHOLD": "262144"}
    )

    assert result.returncode == 0, result.stderr
    assert _printed(result) == "shop-payloads 262144"


def test_without_a_payload_bucket_the_broker_sends_nothing_through_s3():
    result = _run(_shell("import dramatiq; print(dramatiq.get_broker().payloads.bucket)"), _LOCAL)

    assert result.returncode == 0, result.stderr
    assert _printed(result) == "None"


def test_a_payload_threshold_without_a_bucket_is_named_in_one_line():
    result = _run(_shell("pass"), {**_LOCAL, "SQS_PAYLOAD_THRESHOLD": "1000"})

    assert result.returncode == 4
    assert result.stderr.strip() == (
        "offload: SQS_PAYLOAD_THRESHOLD needs SQS_PAYLOAD_BUCKET: the bucket the larger messages go to."
    )
