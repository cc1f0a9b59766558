"""aiservice: one ASGI core for AI services on serverless and container platforms.

Typical use::

    from aiservice import create_app, load_settings
    app = create_app(load_settings("aiservice.yaml"))
"""

from __future__ import annotations

import gc as _gc

_collecting = _gc.isenabled()
_gc.disable()
try:
    from ._version import __version__
    from .app import create_app, get_runtime
    from .config import Settings, load_settings
    from .errors import AIServiceError, ConfigError
    from .runtime import Runtime
finally:
    if _collecting:
        _gc.enable()

__all__ = [
    "AIServiceError",
    "ConfigError",
    "Runtime",
    "Settings",
    "__version__",
    "create_app",
    "get_runtime",
    "load_settings",
]
