"""Send an error envelope from raw ASGI code (middleware runs outside FastAPI's handlers)."""

from __future__ import annotations

import json

from starlette.types import Send

from ..errors import AIServiceError

__all__ = ["send_error"]


async def send_error(send: Send, error: AIServiceError) -> None:
    body = json.dumps(error.to_body()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()
    ]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
