"""The resolver's shared behaviour (TTL cache, keep-last-good, redaction) and env/file sources."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from aiservice import Settings
from aiservice.secrets import SOURCES, SecretError, SecretResolver
from aiservice.security.redact import REDACTED
from tests.conftest import JsonLogCapture

from .conftest import ManualClock

MakeSettings = Callable[..., Settings]


def file_ref(path: Path) -> str:
    return f"secret://file{path}"  # path is absolute: secret://file/tmp/...


async def test_literals_pass_through_untouched(make_settings: MakeSettings) -> None:
    resolver = SecretResolver(make_settings())
    assert await resolver.resolve("plain-value") == "plain-value"
    assert resolver.cached("plain-value") == "plain-value"


async def test_env_reference_reads_the_settings_environment(make_settings: MakeSettings) -> None:
    resolver = SecretResolver(make_settings(environ={"OPENAI_API_KEY": "sk-env-123"}))
    assert await resolver.resolve("secret://env/OPENAI_API_KEY") == "sk-env-123"
    assert resolver.cached("secret://env/OPENAI_API_KEY") == "sk-env-123"
    with pytest.raises(SecretError, match=r"secret://env/NOPE: environment variable NOPE is not"):
        await resolver.resolve("secret://env/NOPE")


async def test_env_reference_reads_dotenv_under_the_process_environment(tmp_path: Path) -> None:
    from aiservice.config import load_settings

    (tmp_path / ".env").write_text("FROM_DOTENV=dotenv-value\nSHADOWED=dotenv-loses\n")
    settings = load_settings(
        None, environ={"SHADOWED": "process-wins"}, dotenv_file=".env", cwd=tmp_path
    )
    resolver = SecretResolver(settings)
    assert await resolver.resolve("secret://env/FROM_DOTENV") == "dotenv-value"
    assert await resolver.resolve("secret://env/SHADOWED") == "process-wins"


async def test_file_reference_strips_exactly_one_trailing_newline(
    tmp_path: Path, make_settings: MakeSettings
) -> None:
    resolver = SecretResolver(make_settings())
    cases = {"lf": ("value\n", "value"), "crlf": ("value\r\n", "value"), "two": ("v\n\n", "v\n")}
    for name, (content, expected) in cases.items():
        (tmp_path / name).write_bytes(content.encode())
        assert await resolver.resolve(file_ref(tmp_path / name)) == expected, name


async def test_file_paths_are_absolute_unless_dot_relative(
    tmp_path: Path, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text("mounted-value")
    resolver = SecretResolver(make_settings(), ttl=0)
    # secret://file/tmp/x and secret://file//tmp/x both mean /tmp/x
    assert await resolver.resolve(f"secret://file/{str(tmp_path).lstrip('/')}/key") == (
        "mounted-value"
    )
    assert await resolver.resolve(f"secret://file/{tmp_path}/key") == "mounted-value"
    monkeypatch.chdir(tmp_path)
    assert await resolver.resolve("secret://file/./key") == "mounted-value"


async def test_file_errors_name_the_reference_and_path(
    tmp_path: Path, make_settings: MakeSettings
) -> None:
    resolver = SecretResolver(make_settings())
    missing = tmp_path / "absent"
    with pytest.raises(
        SecretError, match=rf"cannot resolve {file_ref(missing)}: file .* not exist"
    ):
        await resolver.resolve(file_ref(missing))
    with pytest.raises(SecretError, match="is a directory"):
        await resolver.resolve(file_ref(tmp_path))
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SecretError, match="not UTF-8"):
        await resolver.resolve(file_ref(tmp_path / "bin"))


async def test_unknown_source_and_malformed_reference(make_settings: MakeSettings) -> None:
    resolver = SecretResolver(make_settings())
    with pytest.raises(SecretError, match=r"unknown secret source 'vault' \(known: .*aws-sm"):
        await resolver.resolve("secret://vault/x")
    with pytest.raises(SecretError, match="malformed secret reference 'secret://env'"):
        await resolver.resolve("secret://env")


async def test_value_is_cached_until_ttl_then_refetched(
    tmp_path: Path, make_settings: MakeSettings, clock: ManualClock
) -> None:
    secret = tmp_path / "api-key"
    secret.write_text("first-generation")
    resolver = SecretResolver(make_settings({"secrets": {"ttl": 120}}), clock=clock)
    assert resolver.ttl == 120
    ref = file_ref(secret)
    assert await resolver.resolve(ref) == "first-generation"
    secret.write_text("second-generation")
    clock.advance(119)
    assert await resolver.resolve(ref) == "first-generation"
    clock.advance(1)
    assert await resolver.resolve(ref) == "second-generation"


async def test_refresh_failure_keeps_last_good_value_and_warns(
    tmp_path: Path, make_settings: MakeSettings, clock: ManualClock, json_logs: JsonLogCapture
) -> None:
    secret = tmp_path / "api-key"
    secret.write_text("last-good-value")
    resolver = SecretResolver(make_settings(), ttl=10, clock=clock)
    ref = file_ref(secret)
    assert await resolver.resolve(ref) == "last-good-value"
    secret.unlink()
    clock.advance(11)
    assert await resolver.resolve(ref) == "last-good-value"
    [record] = json_logs.records
    assert record["severity"] == "WARNING"
    assert record["logger"] == "aiservice.secrets"
    assert ref in record["message"] and "does not exist" in record["message"]
    assert "last-good-value" not in json_logs.lines[0]


async def test_first_fetch_failure_raises_instead_of_returning_nothing(
    tmp_path: Path, make_settings: MakeSettings
) -> None:
    resolver = SecretResolver(make_settings())
    with pytest.raises(SecretError):
        await resolver.resolve(file_ref(tmp_path / "never-existed"))
    with pytest.raises(SecretError, match="has not been resolved yet"):
        resolver.cached(file_ref(tmp_path / "never-existed"))


class _CountingSource:
    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def fetch(self, name: str) -> str:
        with self.lock:
            self.calls += 1
        return f"value-of-{name}"


async def test_concurrent_resolves_of_one_reference_fetch_once(make_settings: MakeSettings) -> None:
    source = _CountingSource()
    built: list[Settings] = []

    def factory(settings: Settings) -> _CountingSource:
        built.append(settings)
        return source

    SOURCES.add("test-counting", factory)
    settings = make_settings()
    resolver = SecretResolver(settings)
    refs = ["secret://test-counting/a"] * 8 + ["secret://test-counting/b"] * 8
    values = await asyncio.gather(*(resolver.resolve(r) for r in refs))
    assert values == ["value-of-a"] * 8 + ["value-of-b"] * 8
    assert source.calls == 2
    assert built == [settings]  # one source per scheme, built with the app's settings


def test_one_resolver_serves_callers_on_successive_event_loops(make_settings: MakeSettings) -> None:
    """A resolver outlives event loops (CLI runs, test clients): no loop-bound locks."""
    source = _CountingSource()
    SOURCES.add("test-loops", lambda settings: source)
    resolver = SecretResolver(make_settings(), ttl=0)  # every call refreshes: callers contend

    async def burst() -> list[str]:
        return list(
            await asyncio.gather(*(resolver.resolve("secret://test-loops/k") for _ in range(6)))
        )

    assert asyncio.run(burst()) == ["value-of-k"] * 6
    assert asyncio.run(burst()) == ["value-of-k"] * 6
    assert source.calls >= 2


async def test_a_source_that_fails_to_build_is_a_secret_error(make_settings: MakeSettings) -> None:
    def broken(settings: Settings) -> _CountingSource:
        raise RuntimeError("plugin misconfigured")

    SOURCES.add("test-broken", broken)
    with pytest.raises(SecretError, match="cannot create test-broken source: RuntimeError: plugin"):
        await SecretResolver(make_settings()).resolve("secret://test-broken/x")


async def test_resolved_values_never_reach_json_log_output(
    make_settings: MakeSettings, json_logs: JsonLogCapture
) -> None:
    pem = 'line-one "quoted"\nline-two\\end'
    environ = {"API_KEY": "sk-redact-me-42", "PEM": pem}
    resolver = SecretResolver(make_settings(environ=environ))
    await resolver.resolve_many(["secret://env/API_KEY", "secret://env/PEM"])

    log = logging.getLogger("aiservice.test")
    log.info(
        "calling upstream with %s", "sk-redact-me-42", extra={"header": "Bearer sk-redact-me-42"}
    )
    log.info("loaded key %s", pem)
    try:
        raise ValueError("bad token sk-redact-me-42")
    except ValueError:
        log.exception("failed")

    output = "\n".join(json_logs.lines)
    assert "sk-redact-me-42" not in output
    # The JSON line carries the PEM escaped; neither form may appear.
    assert "line-one" not in output and "line-two" not in output
    assert output.count(REDACTED) >= 4
    assert json_logs.records[0]["header"] == f"Bearer {REDACTED}"
