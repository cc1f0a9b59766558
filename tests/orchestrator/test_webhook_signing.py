"""Standard Webhooks signing: the spec's published example and the receiver-side checks."""

from __future__ import annotations

import random
import time

from aiservice.orchestrator.calls import backoff_delay
from aiservice.orchestrator.model import RetrySpec
from aiservice.orchestrator.webhook import sign, verify

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_signature_matches_the_standard_webhooks_example() -> None:
    signature = sign(
        SPEC_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _headers(body: bytes, stamp: int, secret: str = SPEC_SECRET) -> dict[str, str]:
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1,bogus " + sign(secret, "msg_1", stamp, body),
    }


def test_verify_accepts_any_matching_signature_and_rejects_tampering() -> None:
    now = int(time.time())
    body = b'{"a":1}'
    assert verify(SPEC_SECRET, _headers(body, now), body)
    assert not verify(SPEC_SECRET, _headers(body, now), b'{"a":2}')
    assert not verify(SPEC_SECRET, _headers(body, now, "whsec_b3RoZXI="), body)
    assert not verify(SPEC_SECRET, _headers(body, now - 3600), body)  # replayed


def test_plain_string_secrets_are_used_as_utf8_keys() -> None:
    assert sign("plain", "m", 1, b"x") != sign("plain2", "m", 1, b"x")
    assert sign("plain", "m", 1, b"x").startswith("v1,")


def test_backoff_grows_exponentially_is_capped_and_full_jitter_stays_below() -> None:
    policy = RetrySpec(initial_delay=0.5, multiplier=2, max_delay=3, jitter="none")
    assert [backoff_delay(policy, n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3]
    jittered = RetrySpec(initial_delay=0.5, multiplier=2, max_delay=3, jitter="full")
    rng = random.Random(7)
    samples = [backoff_delay(jittered, 3, rng) for _ in range(200)]
    assert all(0 <= s <= 2.0 for s in samples) and len(set(samples)) > 100
