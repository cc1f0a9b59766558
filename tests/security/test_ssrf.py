"""The SSRF guard: what it refuses (in every spelling), what the allowlist opens (per host and
port), and that the connector connects only to the address it checked."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any

import pytest
from aiohttp.abc import ResolveResult
from fastapi import FastAPI, Request
from yarl import URL

from aiservice.config.allowlist import AllowRule, parse_allow_entry, parse_ipv4_loose
from aiservice.errors import ConfigError
from aiservice.security.ssrf import SSRFError, SSRFGuard
from aiservice.transport.auth import Outgoing
from aiservice.transport.client import GuardedClient, build_request
from aiservice.transport.guard import GuardedConnector

from ..conftest import MakeSettings
from ..support.servers import serve_app
from .spellings import LOOPBACK_SPELLINGS, spell

OTHER_SPELLINGS = [
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.100.100.200/",  # CGNAT (Alibaba metadata)
    "http://169.254.169.254/latest/meta-data/",
    "http://0xa9fea9fe/latest/meta-data/",  # the same, hex
    "http://[::ffff:a9fe:a9fe]/",  # the same, IPv4-mapped
    "http://169.254.170.2/v2/credentials",
    "http://[fd00:ec2::254]/",
    "http://[fc00::1]/",
    "http://[fe80::1]/",
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://[64:ff9b:1::a00:1]/",  # local-use NAT64
    "http://[ff02::1]/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://192.0.2.1/",  # documentation range
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata.google.internal./computeMetadata/v1/",
    "http://METADATA.google.internal/",
    "http://metadata/",
    "http://256.0.0.1/",  # all numbers but no address: neither a name nor an IP
    "http://0x1ffffffff/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "/relative/path",
    "http:///nohost",
]


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS + OTHER_SPELLINGS)
async def test_every_spelling_of_a_non_public_destination_is_refused(url: str) -> None:
    with pytest.raises(SSRFError) as info:
        await SSRFGuard().check_url(spell(url, 8080))
    assert info.value.status_code == 400
    assert info.value.code == "url_not_allowed"


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/dns",
        "http://[2001:4860:4860::8888]/",
        "http://134744072/",  # 8.8.8.8 in decimal: spelling alone is not refused
        "http://[64:ff9b::808:808]/",  # NAT64 of a public address (IPv6-only networks)
        "http://[2002:808:808::]/",
    ],
)
async def test_public_addresses_are_allowed_in_any_spelling(url: str) -> None:
    await SSRFGuard().check_url(url)


def test_loose_ipv4_reads_what_inet_aton_reads() -> None:
    for host in ("2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "127.1", "127.0.1"):
        assert str(parse_ipv4_loose(host)) == "127.0.0.1"
        assert str(parse_ipv4_loose(host)) == socket.inet_ntoa(socket.inet_aton(host))
    assert parse_ipv4_loose("example.com") is None
    assert parse_ipv4_loose("1.2.3.4.5") is None
    with pytest.raises(ValueError):
        parse_ipv4_loose("09.1.1.1")  # 9 is no octal digit


# -- the resolver path: a public-looking name whose DNS answer is private -------------------

FakeDNS = Callable[[dict[str, list[str]]], None]


@pytest.fixture
async def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    """Answers ``getaddrinfo`` on the running loop from a table (as a hostile DNS would)."""
    loop = asyncio.get_running_loop()

    def install(table: dict[str, list[str]]) -> None:
        async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
            if host not in table:
                raise socket.gaierror(socket.EAI_NONAME, "unknown")
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, 1, 6, "", (a, port))
                for a in table[host]
            ]

        monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)

    return install


@pytest.mark.parametrize(
    "answers",
    [
        ["10.0.0.7"],
        ["127.0.0.1"],
        ["169.254.169.254"],
        ["93.184.216.34", "127.0.0.1"],  # one private answer among public ones is enough
        ["::ffff:127.0.0.1"],
        ["fe80::1%eth0"],
        ["fd12:3456::1"],
    ],
)
async def test_names_resolving_to_private_addresses_are_refused(
    fake_dns: FakeDNS, answers: list[str]
) -> None:
    fake_dns({"api.public-looking.example": answers})
    with pytest.raises(SSRFError, match="resolves to a non-public address"):
        await SSRFGuard().check_url("https://api.public-looking.example/v1")


async def test_names_resolving_to_public_addresses_are_allowed(fake_dns: FakeDNS) -> None:
    fake_dns({"api.public-looking.example": ["93.184.216.34", "2606:2800:220:1::1"]})
    assert await SSRFGuard().resolve("api.public-looking.example", 443) == [
        "93.184.216.34",
        "2606:2800:220:1::1",
    ]


async def test_unresolvable_names_are_refused(fake_dns: FakeDNS) -> None:
    fake_dns({})
    with pytest.raises(SSRFError, match="does not resolve"):
        await SSRFGuard().check_url("https://nowhere.example/")


# -- the allowlist --------------------------------------------------------------------------


async def test_allowlist_entries_with_a_port_open_only_that_port(fake_dns: FakeDNS) -> None:
    fake_dns({"fn.internal": ["10.0.0.5"], "other.internal": ["10.0.0.5"]})
    guard = SSRFGuard(["127.0.0.1:9001", "[::1]:9001", "fn.internal:8443"])
    await guard.check_url("http://127.0.0.1:9001/")
    await guard.check_url("http://0x7f000001:9001/")  # the same address, spelled otherwise
    await guard.check_url("http://[::1]:9001/")
    await guard.check_url("https://fn.internal:8443/")
    for refused in (
        "http://127.0.0.1:9002/",
        "http://127.0.0.1/",
        "http://[::1]:9002/",
        "http://127.0.0.2:9001/",
        "https://fn.internal/",  # port 443
        "http://fn.internal:8444/",
        "https://other.internal:8443/",  # same address, a name nobody allowed
    ):
        with pytest.raises(SSRFError):
            await guard.check_url(refused)


async def test_allowlist_entries_without_a_port_open_every_port(fake_dns: FakeDNS) -> None:
    fake_dns({"fn.internal": ["10.0.0.5"]})
    guard = SSRFGuard(["127.0.0.0/8", "fn.internal", "[::1]"])
    await guard.check_url("http://127.0.0.1:8080/hook")
    await guard.check_url("http://127.9.9.9/")
    await guard.check_url("http://fn.internal:1234/")  # the name, whatever it resolves to
    await guard.check_url("http://[::1]:5/")
    for refused in ("http://10.0.0.1/", "http://169.254.169.254/", "http://[::2]/"):
        with pytest.raises(SSRFError):
            await guard.check_url(refused)


async def test_metadata_names_need_an_explicit_allowlist_entry(fake_dns: FakeDNS) -> None:
    fake_dns({"metadata.google.internal": ["169.254.169.254"]})
    with pytest.raises(SSRFError, match="cloud metadata"):
        await SSRFGuard(["169.254.0.0/16"]).check_url("http://metadata.google.internal/")
    guard = SSRFGuard(["metadata.google.internal:80"])
    await guard.check_url("http://metadata.google.internal./computeMetadata/v1/")
    with pytest.raises(SSRFError):
        await guard.check_url("http://metadata.google.internal:8080/")


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        ("fn.internal", AllowRule(host="fn.internal")),
        ("FN.Internal.:8443", AllowRule(host="fn.internal", port=8443)),
        ("127.0.0.1", AllowRule(network=ip_network("127.0.0.1/32"))),
        ("127.0.0.1:9001", AllowRule(network=ip_network("127.0.0.1/32"), port=9001)),
        ("10.0.0.0/8", AllowRule(network=ip_network("10.0.0.0/8"))),
        ("10.1.2.3/8", AllowRule(network=ip_network("10.0.0.0/8"))),
        ("[::1]", AllowRule(network=ip_network("::1/128"))),
        ("[::1]:9001", AllowRule(network=ip_network("::1/128"), port=9001)),
        ("fd00::/8", AllowRule(network=ip_network("fd00::/8"))),
    ],
)
def test_allowlist_entry_syntax(entry: str, rule: AllowRule) -> None:
    assert parse_allow_entry(entry) == rule


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("", "empty"),
        ("127.1", "four decimal numbers"),
        ("0x7f000001:80", "four decimal numbers"),
        ("fn.internal:99999", "port must be 1..65535"),
        ("fn.internal:http", "port must be a number"),
        ("::1:9001", r"in brackets, \[::1\] or \[::1\]:9001"),
        ("::1", "in brackets"),
        ("[fe80::1%eth0]:80", "not an IPv6 address"),
        ("10.0.0.0/8:80", "not a CIDR range"),
        ("bad host", "not a host name"),
        ("http://fn.internal/", "not a CIDR range"),
    ],
)
def test_bad_allowlist_entries_say_what_is_wrong(entry: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_allow_entry(entry)


def test_bad_allowlist_entry_is_a_config_error_naming_the_key(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError) as info:
        make_settings({"orchestrator": {"ssrf_allowlist": ["127.0.0.1:9001", "127.1"]}})
    message = str(info.value)
    assert "orchestrator.ssrf_allowlist" in message
    assert "'127.1'" in message
    assert "aiservice.yaml" in message


# -- connect time: the connector checks and pins the address --------------------------------


@dataclass
class Echo:
    """A loopback server that answers ``/echo`` with the Host header it got and counts
    the requests that reached it."""

    url: str
    port: int
    hits: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def echo_server() -> Iterator[Echo]:
    app = FastAPI()
    hits: list[str] = []

    @app.get("/echo")
    async def echo(request: Request) -> Any:
        hits.append(request.headers["host"])
        return {"host": request.headers["host"]}

    with serve_app(app) as url:
        port = URL(url).port
        assert port is not None
        yield Echo(url, port, hits)


def get(url: str) -> Outgoing:
    return build_request("GET", url)


async def test_the_connector_refuses_at_connect_time(echo_server: Echo) -> None:
    client = GuardedClient(SSRFGuard())
    try:
        with pytest.raises(SSRFError):
            await client.send(get(f"{echo_server.url}/echo"))
    finally:
        await client.aclose()


async def test_the_connector_connects_to_the_checked_address_keeping_host(
    echo_server: Echo,
) -> None:
    resolved: list[tuple[str, int]] = []

    class Recording(SSRFGuard):
        async def resolve(self, host: str, port: int) -> list[str]:
            addresses = await super().resolve(host, port)
            resolved.extend((a, port) for a in addresses)
            return addresses

    client = GuardedClient(Recording(["localhost", "127.0.0.1"]))
    try:
        answer = await client.send(get(f"http://localhost:{echo_server.port}/echo"))
    finally:
        await client.aclose()
    assert answer.status == 200
    # The server saw the original name; the socket went to an address the guard checked.
    assert answer.json() == {"host": f"localhost:{echo_server.port}"}
    assert ("127.0.0.1", echo_server.port) in resolved


async def test_the_connector_connects_to_the_normalised_address(echo_server: Echo) -> None:
    """A hex spelling of an allowed address reaches it: the guard, not the OS, reads it."""
    port = echo_server.port
    client = GuardedClient(SSRFGuard([f"127.0.0.1:{port}"]))
    try:
        answer = await client.send(get(f"http://0x7f000001:{port}/echo"))
        assert answer.json() == {"host": f"0x7f000001:{port}"}
        with pytest.raises(SSRFError):
            await client.send(get(f"http://0x7f000001:{port + 1}/echo"))
    finally:
        await client.aclose()


async def test_dns_rebinding_after_the_early_check_is_refused_at_connect(
    echo_server: Echo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name answers a public address to the up-front check and loopback to the
    connection: the connector resolves again and refuses; nothing reaches the server."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET, 1, 6, "", (a, port)) for a in next(answers)]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    guard = SSRFGuard()
    url = f"http://rebind.example:{echo_server.port}/echo"
    await guard.check_url(url)  # the early check sees a public address
    before = len(echo_server.hits)
    client = GuardedClient(guard)
    try:
        with pytest.raises(SSRFError, match="resolves to a non-public address"):
            await client.send(get(url))
    finally:
        await client.aclose()
    assert len(echo_server.hits) == before


async def test_every_approved_address_may_be_tried_in_turn(
    echo_server: Echo, fake_dns: FakeDNS
) -> None:
    """A name with several approved answers: the connector races them (happy eyeballs,
    one task per address) and each attempt still sees this connection's approval."""
    fake_dns({"dual.example": ["::1", "127.0.0.2", "127.0.0.1"]})
    client = GuardedClient(SSRFGuard(["dual.example"]))
    try:
        answer = await client.send(get(f"http://dual.example:{echo_server.port}/echo"))
    finally:
        await client.aclose()
    assert answer.json() == {"host": f"dual.example:{echo_server.port}"}


@pytest.mark.parametrize("swapped", [["127.0.0.2"], ["127.0.0.2", "127.0.0.3"]])
async def test_a_socket_to_an_address_the_guard_did_not_approve_is_never_opened(
    echo_server: Echo, swapped: list[str]
) -> None:
    """The second lock: even if the connector were handed other addresses than the ones
    the guard approved, the socket factory refuses each before connecting (one address,
    or several raced by happy eyeballs)."""

    class Swapping(GuardedConnector):
        async def _resolve_host(
            self, host: str, port: int, traces: Sequence[Any] | None = None
        ) -> list[ResolveResult]:
            [result] = await super()._resolve_host(host, port, traces)
            return [{**result, "host": address} for address in swapped]

    guard = SSRFGuard([f"127.0.0.1:{echo_server.port}"])
    client = GuardedClient(guard, Swapping)
    try:
        with pytest.raises(SSRFError, match="not checked by the SSRF guard"):
            await client.send(get(f"http://127.0.0.1:{echo_server.port}/echo"))
    finally:
        await client.aclose()


async def test_redirects_come_back_as_answers_and_a_following_session_checks_each_hop(
    echo_server: Echo,
) -> None:
    app = FastAPI()

    @app.get("/bounce")
    async def bounce() -> Any:
        from fastapi.responses import RedirectResponse

        return RedirectResponse(f"http://0x7f000001:{echo_server.port}/echo", status_code=302)

    with serve_app(app) as bouncer:
        bouncer_port = URL(bouncer).port
        client = GuardedClient(SSRFGuard([f"127.0.0.1:{bouncer_port}"]))
        before = len(echo_server.hits)
        try:
            answer = await client.send(get(f"{bouncer}/bounce"))
            assert answer.status == 302 and answer.is_redirect  # not followed
            # Even a session told to follow has the hop checked by its connector.
            session = client.pool.session()
            with pytest.raises(SSRFError, match=f"127.0.0.1:{echo_server.port}"):
                await session.get(f"{bouncer}/bounce", allow_redirects=True)
        finally:
            await client.aclose()
        assert len(echo_server.hits) == before


async def test_proxy_settings_in_the_environment_are_ignored(
    echo_server: Echo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy would connect on our behalf to an address the guard never saw: the
    sessions never read one from the environment, and go straight to the checked address."""
    proxy_hits: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proxy_hits.append(await reader.read(100))
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    proxy_port = server.sockets[0].getsockname()[1]
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = GuardedClient(SSRFGuard([f"127.0.0.1:{echo_server.port}"]))
    try:
        answer = await client.send(get(f"{echo_server.url}/echo"))
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert answer.status == 200 and proxy_hits == []
