"""AWS Lambda entry point: ``handler`` = ``adapters/aws_lambda.handler``.

Settings come from the environment (``AISERVICE_*``, ``AISERVICE_CONFIG``) as everywhere
else. The app is built at import (no network, no SDK imports); its startup runs on the
first invocation and is kept for the life of the execution environment. With SnapStart
(``deploy.lambda_snapstart``) it runs before the snapshot instead, and again after each
restore (:mod:`aiservice.platforms.snapstart`).
"""

from __future__ import annotations

from aiservice import create_app
from aiservice.app import get_runtime
from aiservice.platforms import snapstart
from aiservice.platforms.aws_lambda import lambda_handler

app = create_app()
runtime = get_runtime(app)
handler = lambda_handler(
    app,
    runtime=runtime,
    events=runtime.settings.aws_lambda.events,
    resolve=runtime.secrets.resolve,
    api_gateway_base_path=runtime.settings.aws_lambda.api_gateway_base_path,
    access_log=False,  # the app's middleware writes the access log, with request ids
)
snapstart.register(handler, runtime)
