"""Retry policy, Retry-After parsing, rate limiting and client-side stop trimming, in isolation."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from codeloop.errors import AgentGenerationError
from codeloop.models.base import StreamDelta, TokenUsage
from codeloop.models.reliability import (
    ProviderFailure,
    RateLimiter,
    Retrier,
    RetryPolicy,
    retry_after_seconds,
)
from codeloop.models.remote import StopTrimmer, is_transport_error, trim_stream


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    for retry, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)]:
        waits = {policy.backoff(retry, None) for _ in range(50)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(waits) > 1  # jittered, not fixed


def test_retry_after_is_honoured_exactly_plus_small_jitter() -> None:
    policy = RetryPolicy()
    for _ in range(20):
        assert 3.0 <= policy.backoff(0, 3.0) <= 3.3


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    later = retry_after_seconds({"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert later is not None and 25 < later <= 30
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None
    assert retry_after_seconds({"retry-after": "soon"}) is None


def _failing(failures: list[ProviderFailure]) -> Retrier:
    def classify(exc: BaseException) -> ProviderFailure | None:
        return failures[int(str(exc))] if isinstance(exc, RuntimeError) else None

    return Retrier(
        "demo", "m", classify, RetryPolicy(max_retries=3, base_delay=0.001), sleep=lambda s: waits.append(s)
    )


waits: list[float] = []


def test_retrier_stops_on_non_retryable_and_counts_attempts() -> None:
    waits.clear()
    failures = [ProviderFailure(503, "busy", True), ProviderFailure(400, "bad request", False)]
    calls = iter(range(2))
    retrier = _failing(failures)

    def call() -> str:
        raise RuntimeError(str(next(calls)))

    with pytest.raises(AgentGenerationError) as info:
        retrier.call(call)
    assert info.value.status == 400 and "2 attempts" in str(info.value) and "bad request" in str(info.value)
    assert len(waits) == 1


def test_retrier_respects_max_retries_and_deadline() -> None:
    waits.clear()
    retrier = _failing([ProviderFailure(429, "slow down", True, retry_after=0.01)])
    attempts = []

    def call() -> str:
        attempts.append(1)
        raise RuntimeError("0")

    with pytest.raises(AgentGenerationError, match="4 attempts"):
        retrier.call(call)
    assert len(attempts) == 4 and len(waits) == 3
    slow = _failing([ProviderFailure(429, "slow down", True, retry_after=60)])
    slow.policy.deadline_s = 5.0  # waiting 60 s would pass the deadline: give up now
    attempts.clear()
    with pytest.raises(AgentGenerationError, match="1 attempt "):
        slow.call(call)
    assert len(attempts) == 1


def test_programming_errors_pass_through_unwrapped() -> None:
    retrier = _failing([])
    with pytest.raises(KeyError):
        retrier.call(lambda: {}["missing"])


def test_rate_limiter_spaces_request_starts() -> None:
    limiter = RateLimiter(requests_per_minute=1200)  # 50 ms apart
    started = time.monotonic()
    for _ in range(4):
        limiter.acquire()
    assert time.monotonic() - started >= 0.15
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 100])
def test_stop_trimmer_finds_stops_split_across_chunks(size: int) -> None:
    text = "print(1)\n<end_code>\nObservation: invented"
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    trimmer = StopTrimmer(["<end_code>", "Observation:"])
    out = "".join(trimmer.feed(c) for c in chunks) + trimmer.flush()
    assert out == "print(1)\n"


def test_trim_stream_keeps_usage_last_and_releases_held_text() -> None:
    deltas = [
        StreamDelta(content="abc"),
        StreamDelta(content="de<"),
        StreamDelta(token_usage=TokenUsage(1, 2)),
    ]
    out = list(trim_stream(iter(deltas), ["<stop>"]))
    assert "".join(d.content or "" for d in out) == "abcde<"
    assert out[-1].token_usage == TokenUsage(1, 2)


def test_transport_errors_are_recognised() -> None:
    import httpx
    import urllib3

    assert is_transport_error(httpx.RemoteProtocolError("cut"))
    assert is_transport_error(urllib3.exceptions.ProtocolError("cut"))
    assert is_transport_error(ConnectionResetError())
    assert not is_transport_error(ValueError("x"))
