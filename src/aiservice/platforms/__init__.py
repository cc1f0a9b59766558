"""Bridges that run ANY ASGI app on a platform; each imports its SDK only when used.

* :func:`aiservice.platforms.aws_lambda.lambda_handler` - AWS Lambda, and
  :class:`~aiservice.platforms.aws_lambda.Mangum`, the same bridge with Mangum's signature
  (``from aiservice.platforms import Mangum``; see docs/deploy/lambda.md).
* :func:`aiservice.platforms.gcp_functions.gcp_function` - Cloud Functions gen2.
* :func:`aiservice.platforms.serve.serve` - uvicorn in a container (Cloud Run, Kubernetes).
* :mod:`aiservice.platforms.events` - handlers for queue messages and non-HTTP events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # real types for checkers; at run time the names load on first use
    from .aws_lambda import Mangum, lambda_handler

__all__ = ["Mangum", "lambda_handler"]

# Importing the package must not import Mangum's modules: the Lambda names load on use.
_LAZY = {"Mangum": "aws_lambda", "lambda_handler": "aws_lambda"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
