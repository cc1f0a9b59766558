"""Declarative fan-out of HTTP calls: flows, the DAG executor, step auth, webhooks, queue.

Import the submodules you need; this package imports nothing heavy.
"""

from __future__ import annotations
