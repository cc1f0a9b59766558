"""Shared state (memory, Redis, DynamoDB), the LLM response cache, coalescing and rate limits.

Other capabilities reach the app's backend with :func:`get_state` (fail-open wrapped).
"""

from __future__ import annotations

from .base import BACKENDS, StateBackend
from .state import get_state

__all__ = ["BACKENDS", "StateBackend", "get_state"]
