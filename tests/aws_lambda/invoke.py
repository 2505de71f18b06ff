"""Call a handler of web.aws_lambda in a fresh interpreter, as Lambda's runtime does after its init.

    python -m tests.aws_lambda.invoke web_handler < events.json

Reads a JSON list of events, imports web.aws_lambda (Django's setup, the clients), calls the handler
with each event in turn, and prints the list of responses as one JSON line.
"""

from __future__ import annotations

import importlib
import json
import sys

from tests.aws_lambda.events import LambdaContext


def main() -> None:
    handler_name = sys.argv[1]
    events = json.load(sys.stdin)
    module = importlib.import_module("web.aws_lambda")
    handler = getattr(module, handler_name)
    responses = [handler(event, LambdaContext(request_id=f"request-{i}")) for i, event in enumerate(events)]
    sys.stdout.write(json.dumps(responses) + "\n")


if __name__ == "__main__":
    main()
