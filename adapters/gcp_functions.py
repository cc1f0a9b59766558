"""Cloud Functions (gen2) entry points, run by functions-framework in ASGI mode.

* ``handle`` - HTTP: the whole aiservice app (deploy with ``--entry-point handle``).
* ``handle_pubsub`` - Pub/Sub CloudEvents carrying queue messages. Not deployed by
  ``aiservice render`` (nothing publishes to a topic yet); kept for a durable queue.

Run locally: ``FUNCTION_USE_ASGI=true functions-framework --source adapters/gcp_functions.py
--target handle``.
"""

from __future__ import annotations

from functions_framework import aio

from aiservice import create_app
from aiservice.app import get_runtime
from aiservice.platforms.gcp_functions import gcp_function, pubsub_function

app = create_app()
handle = aio.http(gcp_function(app, name="handle"))
handle_pubsub = aio.cloud_event(pubsub_function(app, get_runtime(app), name="handle_pubsub"))
