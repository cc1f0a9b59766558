"""The ``responses`` section: how ``POST /v1/responses`` keeps stored responses."""

from pydantic import Field

from .sections import Section

__all__ = ["ResponsesSettings"]


class ResponsesSettings(Section):
    ttl: int = Field(30 * 86_400, ge=1)
    """Seconds a stored response (``store: true``) stays readable by ``GET
    /v1/responses/{id}`` and continuable with ``previous_response_id`` (OpenAI keeps 30 days)."""
    prefix: str = Field("responses", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    """Prefix of the state-backend keys (after ``cache.namespace``)."""
    max_stored_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    """A stored response (its whole conversation) larger than this is not stored: the
    answer says ``store: false``, so a client knows it cannot continue from it."""
