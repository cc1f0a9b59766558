"""Spellings of the loopback address the SSRF guard must refuse, ``PORT`` to fill in.

Shared by the unit tests (tests/security/test_ssrf.py) and the end-to-end tests that drive
each one through every way a URL reaches an HTTP client (tests/reliability/).
"""

from __future__ import annotations

__all__ = ["LOOPBACK_SPELLINGS", "spell"]

LOOPBACK_SPELLINGS = [
    "http://127.0.0.1:PORT/",
    "http://2130706433:PORT/",  # decimal
    "http://0x7f000001:PORT/",  # hex
    "http://0X7F000001:PORT/",
    "http://0x7f.0.0.1:PORT/",  # hex first octet
    "http://0x7f.0x0.0x0.0x1:PORT/",
    "http://0177.0.0.1:PORT/",  # octal (httpx refuses to parse it at all)
    "http://017700000001:PORT/",  # octal, one number
    "http://127.1:PORT/",  # short forms
    "http://127.0.1:PORT/",
    "http://[::ffff:127.0.0.1]:PORT/",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]:PORT/",
    "http://[::127.0.0.1]:PORT/",  # IPv4-compatible IPv6
    "http://[64:ff9b::7f00:1]:PORT/",  # NAT64 well-known prefix
    "http://[2002:7f00:1::]:PORT/",  # 6to4
    "http://public.example@127.0.0.1:PORT/",  # userinfo before the real host
    "http://public.example:x@0x7f000001:PORT/",
    "http://localhost:PORT/",  # a name resolving to loopback
    "http://localhost.:PORT/",  # trailing dot
    "http://LOCALHOST:PORT/",  # upper case
    "http://LocalHost.:PORT/",
    "http://127.0.0.1.:PORT/",
    "http://%6c%6f%63%61%6c%68%6f%73%74:PORT/",  # percent-encoded name
    "http://127.0.0.1%2e:PORT/",
    "http://[::1]:PORT/",
    "http://[::1%25lo]:PORT/",  # IPv6 zone id
    "http://[fe80::1%25eth0]:PORT/",
    "http://[0:0:0:0:0:0:0:1]:PORT/",
    "http://0.0.0.0:PORT/",  # unspecified: connects to the local host on Linux
    "http://0:PORT/",
    "http://[::]:PORT/",
]


def spell(url: str, port: int) -> str:
    return url.replace("PORT", str(port))
