"""Which step and webhook URLs the configuration fixes, decided once at flow load time.

A URL is *literal* when its scheme, host and port are written in the configuration: plain
text in the flow file, or ``settings.functions`` values (also operator configuration),
with any placeholder reading request input, step outputs or secrets only after the
authority is closed by a literal ``/``, ``?`` or ``#``. Such a placeholder can change the
path or query, never where the connection goes. Anything else is *built*: a placeholder in
the scheme, host or port (or before the authority is closed) could point the request
anywhere, so the strict SSRF guard checks it at connect time.

Literal origins are not exempt from the guard either: they are added, host and port
exactly, to the allowlist of the clients that serve literal URLs (see :mod:`.clients`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL

from ..config.allowlist import AllowRule, parse_ipv4_loose
from ..security.ssrf import default_port
from .expr import Path, Template

__all__ = ["Origin", "literal_origin", "reads_only"]

# Scheme and authority; a backslash ends it too so that no parser can read it as a slash.
_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\\]*")


@dataclass(frozen=True, slots=True)
class Origin:
    """Scheme, host (as the connection pool sees it: IDNA, no brackets) and port."""

    scheme: str
    host: str
    port: int

    def rule(self) -> AllowRule:
        """The allowlist rule for exactly this host and port."""
        host = self.host[:-1] if self.host.endswith(".") else self.host
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            try:
                ip4 = parse_ipv4_loose(host)
            except ValueError:
                ip4 = None
            if ip4 is None:
                return AllowRule(host=host, port=self.port)
            ip = ip4
        return AllowRule(network=ipaddress.ip_network(ip), port=self.port)


def _parse(url: str) -> Origin | None:
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return None
    host = parsed.raw_host  # as the connector sees it (see aiservice.transport.guard)
    if parsed.scheme not in ("http", "https") or not host or "%" in host:
        return None
    return Origin(parsed.scheme, host, parsed.port or default_port(parsed.scheme))


def literal_origin(template: Template, settings: Mapping[str, Any]) -> Origin | None:
    """The origin ``template`` always renders to, or ``None`` if the URL is built."""
    prefix, complete = template.static_prefix({"settings": settings})
    if not complete:
        match = _AUTHORITY.match(prefix)
        # The authority must be closed by literal text: what follows can then only be
        # path, query or fragment.
        if match is None or prefix[match.end() : match.end() + 1] not in ("/", "?", "#"):
            return None
        prefix = match.group(0) + "/"
    return _parse(prefix)


def reads_only(paths: Iterable[Path], roots: Iterable[str]) -> bool:
    allowed = set(roots)
    return all(path.root in allowed for path in paths)
