"""HTTP routers. Each capability module exposes ``router`` and optionally ``start``."""
