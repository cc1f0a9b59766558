"""Bridges that run ANY ASGI app on a platform; each imports its SDK only when used.

* :func:`aiservice.platforms.aws_lambda.lambda_handler` - AWS Lambda (Mangum-based).
* :func:`aiservice.platforms.gcp_functions.gcp_function` - Cloud Functions gen2.
* :func:`aiservice.platforms.serve.serve` - uvicorn in a container (Cloud Run, Kubernetes).
* :mod:`aiservice.platforms.events` - handlers for queue messages and non-HTTP events.
"""

from __future__ import annotations
