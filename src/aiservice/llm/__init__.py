"""The LLM gateway: model resolution, retries, fallback, cooldowns and accounting.

See :mod:`aiservice.llm.gateway` for the call flow and the seams where caching, rate
limits and budgets plug in.
"""

from __future__ import annotations

from .accounting import UsageListener, UsageRecord
from .deployments import Deployment, ModelTable
from .gateway import ChatResult, EmbedResult, Gateway, StreamResult

__all__ = [
    "ChatResult",
    "Deployment",
    "EmbedResult",
    "Gateway",
    "ModelTable",
    "StreamResult",
    "UsageListener",
    "UsageRecord",
]
