"""Check the SAM template offline, as far as AWS's own tools can without an account.

    python deploy/check.py [deploy/template.yaml]

1. cfn-lint on the SAM template itself: SAM's and CloudFormation's schemas, intrinsic functions.
2. The SAM transform, run here with aws-sam-translator (CloudFormation runs the same code at deploy
   time), then cfn-lint on the CloudFormation it makes. Some mistakes only exist after the transform:
   a dependency cycle through the API a function serves, the generated roles and permissions.

Exits 1, printing cfn-lint's findings, when either step finds a problem. Nothing is sent to AWS.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

from cfnlint.api import lint_all
from cfnlint.decode import decode_str

DEFAULT_TEMPLATE = Path(__file__).with_name("template.yaml")
#: cfn-lint's levels that fail the check, as on its command line: errors and warnings, not hints.
FAILING_LEVELS = ("E", "W")
#: The transform refuses a local CodeUri; `sam deploy` uploads the zip and puts its S3 location there.
PACKAGED_CODE_URI = "s3://offload-deployment-bucket/offload-lambda.zip"


class _NoManagedPolicies:
    # The transform looks managed policies up by name only for names its bundled map lacks; the
    # template names none, so no IAM request is ever needed.
    def load(self) -> dict[str, str]:
        return {}


def transformed(template: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation template the SAM transform makes of `template`."""
    from samtranslator.translator.transform import transform

    packaged = copy.deepcopy(template)
    packaged.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = PACKAGED_CODE_URI
    for resource in packaged.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in properties:
            properties["CodeUri"] = PACKAGED_CODE_URI
    # The transform asks boto3 for a region to fill in pseudo parameters; any region does here.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return transform(packaged, {}, _NoManagedPolicies())


def check(path: Path) -> list[str]:
    """cfn-lint's findings for the template and for its transform, as lines; empty when both pass."""
    source = path.read_text(encoding="utf-8")
    template, errors = decode_str(source)
    if errors:
        return [f"{path}: {error}" for error in errors]
    findings = [f"{path}: {match}" for match in _lint(source)]
    if findings:
        return findings
    try:
        cloudformation = json.dumps(transformed(template), indent=1)
    except Exception as error:  # the transform's own errors say which resource and why
        return [f"{path}: the SAM transform failed: {error}"]
    return [f"{path} (after the SAM transform): {match}" for match in _lint(cloudformation)]


def _lint(source: str) -> list[Any]:
    return [match for match in lint_all(source) if match.rule.id.startswith(FAILING_LEVELS)]


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_TEMPLATE
    findings = check(path)
    for line in findings:
        sys.stdout.write(line + "\n")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
